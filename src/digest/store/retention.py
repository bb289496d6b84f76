"""Retention: remove old items and old delivery rows in small batches (never one long lock).

Kept whatever their age: items an issue took (the archive and the issue's page), delivery rows
of issues not yet finished, the issues themselves, undated items (their age is only when they
were first seen: pruned, a feed still listing them would bring them back as new).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Connection, and_, delete, func, select

from digest.store import schema
from digest.store.db import Store
from digest.store.items import to_db

#: Rows deleted per transaction: each batch holds its locks for milliseconds.
BATCH = 2000

D = schema.deliveries
I = schema.items  # noqa: E741
IS = schema.issues


@dataclass
class PruneCounts:
    items: int = 0
    deliveries: int = 0
    llm_cache: int = 0
    batches: int = 0


def _old_items(items_before: datetime) -> list[ColumnElement[bool]]:
    in_an_issue = select(schema.issue_items.c.item_id).where(schema.issue_items.c.item_id == I.c.id)
    return [
        I.c.first_seen < to_db(items_before),
        I.c.published < to_db(items_before),
        I.c.dated.is_(True),
        ~in_an_issue.exists(),
    ]


def _old_deliveries(deliveries_before: datetime) -> list[ColumnElement[bool]]:
    finished = select(IS.c.id).where(IS.c.status == "done", IS.c.created < to_db(deliveries_before))
    return [D.c.issue_id.in_(finished.scalar_subquery())]


def count(
    conn: Connection, *, items_before: datetime | None, deliveries_before: datetime | None
) -> PruneCounts:
    """What ``prune`` would remove now."""
    out = PruneCounts()
    if items_before is not None:
        out.items = int(
            conn.execute(select(func.count()).where(and_(*_old_items(items_before)))).scalar() or 0
        )
        out.llm_cache = int(
            conn.execute(
                select(func.count()).where(schema.llm_cache.c.created < to_db(items_before))
            ).scalar()
            or 0
        )
    if deliveries_before is not None:
        out.deliveries = int(
            conn.execute(
                select(func.count()).where(and_(*_old_deliveries(deliveries_before)))
            ).scalar()
            or 0
        )
    return out


def prune(
    store: Store,
    *,
    items_before: datetime | None,
    deliveries_before: datetime | None,
    batch: int = BATCH,
    stop: threading.Event | None = None,
) -> PruneCounts:
    """Delete what is older than the cutoffs, ``batch`` rows per transaction; ``stop`` ends it
    between two batches (what is left goes next time)."""
    out = PruneCounts()
    plan = []
    if deliveries_before is not None:
        plan.append(("deliveries", D, D.c.id, _old_deliveries(deliveries_before)))
    if items_before is not None:
        # An item's topics and summary go with it (ON DELETE CASCADE).
        plan.append(("items", I, I.c.id, _old_items(items_before)))
        cache = schema.llm_cache
        plan.append(("llm_cache", cache, cache.c.key, [cache.c.created < to_db(items_before)]))
    for name, table, key, conditions in plan:
        while not (stop is not None and stop.is_set()):
            with store.begin() as conn:
                ids = select(key).where(*conditions).limit(batch).scalar_subquery()
                n = int(conn.execute(delete(table).where(key.in_(ids))).rowcount or 0)
            out.batches += 1
            setattr(out, name, getattr(out, name) + n)
            if n < batch:
                break
    return out
