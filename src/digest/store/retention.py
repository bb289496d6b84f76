"""Retention: old items, delivery rows, cached summaries and fingerprints removed in short
batches, each its own transaction (a concurrent send or fetch waits milliseconds, not minutes).

Never removed: issues (the archive's pages and texts), items an issue took, subscribers, erased
hashes, delivery rows of an issue not finished and rows a sender still claims. A pruned item
leaves a fingerprint (``items.fingerprint`` of its guid and canonical URL) that keeps it from
returning as new; undated items are kept when fingerprints expire (see ``_old_items``).
Bounce reports go by age with the delivery rows (``Cutoffs.bounces``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    delete,
    exists,
    func,
    or_,
    select,
    update,
)

from digest.models import DeliveryState
from digest.store import schema
from digest.store.db import Store, upsert_insert
from digest.store.items import fingerprint, to_db

#: Rows per transaction: a batch of deliveries takes tens of milliseconds on SQLite.
BATCH = 5000
#: Items go ``BATCH // ITEM_SHARE`` at a time (each one deletes three rows and writes one).
ITEM_SHARE = 5

D = schema.deliveries
I = schema.items  # noqa: E741
IS = schema.issues
F = schema.item_fingerprints
C = schema.llm_cache
B = schema.bounces

#: Delivery rows in these states are still to be sent (or resent): never pruned.
OPEN_STATES = (DeliveryState.PENDING, DeliveryState.RETRY, DeliveryState.UNKNOWN)

#: The order of ``PruneCounts.tables()`` and of the work (the largest table first).
TABLES = ("deliveries", "items", "cache", "fingerprints", "bounces")


@dataclass(frozen=True, slots=True)
class Cutoffs:
    """Rows older than these go; None keeps that kind forever."""

    items: datetime | None = None
    deliveries: datetime | None = None
    cache: datetime | None = None
    fingerprints: datetime | None = None
    #: Bounce reports received before this (the delivery rows' cutoff, never inside the
    #: soft-bounce window: see ``pipeline.prune.cutoffs``).
    bounces: datetime | None = None


@dataclass
class PruneCounts:
    """Rows removed (or, in a dry run, that would be) per kind, and how the batches went."""

    deliveries: int = 0
    items: int = 0
    cache: int = 0
    fingerprints: int = 0
    bounces: int = 0
    #: Issues whose delivery rows were pruned (marked: never sent again).
    issues: int = 0
    batches: int = 0
    #: Seconds of the longest single transaction, and what it removed.
    longest: float = 0.0
    longest_kind: str = ""
    #: The stop flag ended the run between two batches; the rest goes next time.
    stopped: bool = False

    def tables(self) -> tuple[tuple[str, int], ...]:
        return tuple((name, int(getattr(self, name))) for name in TABLES)


#: Tables whose rows keep their item, whatever its age: an item an issue took (`digest explain`,
#: the issue's item list, status), an item an editor decided on (the decision is the editors'
#: record; it would go with its item, ON DELETE CASCADE) and an item in a draft (an editor may
#: add any stored item). A table not in this schema is skipped.
KEEPS_ITS_ITEM = ("issue_items", "editor_decisions", "draft_entries")


def _old_items(before: datetime, *, keep_undated: bool) -> list[ColumnElement[bool]]:
    # First seen and published before the cutoff: an item dated recently may still be taken.
    conditions = [I.c.first_seen < to_db(before), I.c.published < to_db(before)]
    if keep_undated:
        # Once its fingerprint expired, an undated item a feed still lists would come back
        # dated today, i.e. into the next issue; a dated one comes back outside the window.
        conditions.append(I.c.dated.is_(True))
    for name in KEEPS_ITS_ITEM:
        table = schema.metadata.tables.get(name)
        if table is not None:
            conditions.append(~exists().where(table.c.item_id == I.c.id))
    return conditions


def _old_issues(before: datetime, now: datetime) -> list[ColumnElement[bool]]:
    # Only finished issues: an open one's rows are what makes its sending exactly-once. A row
    # still open or claimed (a sender may hold it: see store/claims.py) keeps its issue whole.
    unsettled = exists().where(
        D.c.issue_id == IS.c.id,
        or_(D.c.state.in_([s.value for s in OPEN_STATES]), D.c.claim_expires > to_db(now)),
    )
    return [IS.c.status == "done", IS.c.created < to_db(before), ~unsettled]


def _settled_rows(issue_id: int, now: datetime) -> Select[Any]:
    """One issue's rows no sender needs: finished, and claimed by nobody (or expired)."""
    return select(D.c.id).where(
        D.c.issue_id == issue_id,
        D.c.state.not_in([s.value for s in OPEN_STATES]),
        or_(D.c.claim_expires.is_(None), D.c.claim_expires <= to_db(now)),
    )


def _count(conn: Connection, table: Any, *conditions: ColumnElement[bool]) -> int:
    found = conn.execute(select(func.count()).select_from(table).where(*conditions)).scalar()
    return int(found or 0)


def count(conn: Connection, cut: Cutoffs, *, now: datetime) -> PruneCounts:
    """What ``prune`` would remove now (the dry run)."""
    out = PruneCounts()
    if cut.deliveries is not None:
        old = select(IS.c.id).where(*_old_issues(cut.deliveries, now))
        out.deliveries = _count(conn, D, D.c.issue_id.in_(old))
        has_rows = exists().where(D.c.issue_id == IS.c.id)
        out.issues = _count(conn, IS, *_old_issues(cut.deliveries, now), has_rows)
    if cut.items is not None:
        keep_undated = cut.fingerprints is not None
        out.items = _count(conn, I, *_old_items(cut.items, keep_undated=keep_undated))
    if cut.cache is not None:
        out.cache = _count(conn, C, C.c.created < to_db(cut.cache))
    if cut.fingerprints is not None:
        out.fingerprints = _count(conn, F, F.c.pruned_at < to_db(cut.fingerprints))
    if cut.bounces is not None:
        out.bounces = _count(conn, B, B.c.received < to_db(cut.bounces))
    return out


class _Batches:
    """Runs one short transaction per batch, timing each, until done or stopped."""

    def __init__(self, store: Store, out: PruneCounts, batch: int, stop: threading.Event | None):
        self.store, self.out, self.batch, self.stop = store, out, batch, stop

    def stopped(self) -> bool:
        if self.stop is not None and self.stop.is_set():
            self.out.stopped = True
        return self.out.stopped

    def delete(self, name: str, table: Any, key: Any, old: Select[Any]) -> None:
        """``DELETE FROM table WHERE key IN (old LIMIT batch)`` until fewer rows go: one
        statement, so on SQLite the write lock is taken at once, with the busy timeout."""
        ids = old.limit(self.batch).scalar_subquery()
        stmt = delete(table).where(key.in_(ids))
        self.run(name, lambda conn: int(conn.execute(stmt).rowcount or 0))

    def run(self, name: str, step: Callable[[Connection], int], size: int | None = None) -> None:
        """``step`` removes at most ``size`` (default ``batch``) rows and says how many; repeat
        while it is full."""
        size = size or self.batch
        while not self.stopped():
            started = time.monotonic()
            with self.store.begin() as conn:
                n = step(conn)
            took = time.monotonic() - started
            if took > self.out.longest:
                self.out.longest, self.out.longest_kind = took, name
            self.out.batches += 1
            setattr(self.out, name, getattr(self.out, name) + n)
            if n < size:
                return


def prune(
    store: Store,
    cut: Cutoffs,
    *,
    now: datetime,
    batch: int = BATCH,
    stop: threading.Event | None = None,
) -> PruneCounts:
    """Delete what is older than the cutoffs, ``batch`` rows per transaction; ``stop`` ends it
    between two batches (what is left goes next time, nothing is half done)."""
    out = PruneCounts()
    runner = _Batches(store, out, batch, stop)
    if cut.deliveries is not None:
        _prune_deliveries(store, runner, cut.deliveries, now)
    if cut.items is not None:
        # An item takes its topics and summary with it and has a fingerprint written: a fifth
        # of the batch keeps its transaction as short as a batch of delivery rows.
        items_before, size = cut.items, max(1, batch // ITEM_SHARE)
        keep_undated = cut.fingerprints is not None
        runner.run(
            "items",
            lambda conn: _delete_items(conn, items_before, size, now, keep_undated=keep_undated),
            size,
        )
    if cut.cache is not None:
        runner.delete("cache", C, C.c.key, select(C.c.key).where(C.c.created < to_db(cut.cache)))
    if cut.fingerprints is not None:
        old = select(F.c.id).where(F.c.pruned_at < to_db(cut.fingerprints))
        runner.delete("fingerprints", F, F.c.id, old)
    if cut.bounces is not None:
        old = select(B.c.id).where(B.c.received < to_db(cut.bounces))
        runner.delete("bounces", B, B.c.id, old)
    return out


def _prune_deliveries(store: Store, runner: _Batches, before: datetime, now: datetime) -> None:
    # Mark first, in its own transaction: from then on the issue can never be sent again (its
    # rows said who had it), and a prune stopped halfway finishes the marked issues next time.
    with store.begin() as conn:
        conn.execute(
            update(IS)
            .where(*_old_issues(before, now), IS.c.deliveries_pruned.is_(None))
            .values(deliveries_pruned=to_db(now))
        )
        has_rows = exists().where(D.c.issue_id == IS.c.id)
        marked = [
            int(i)
            for (i,) in conn.execute(
                select(IS.c.id)
                .where(IS.c.deliveries_pruned.is_not(None), has_rows)
                .order_by(IS.c.id)
            )
        ]
    for issue_id in marked:
        if runner.stopped():
            return
        runner.out.issues += 1
        # The (issue, state, id) index finds one issue's rows without a scan.
        runner.delete("deliveries", D, D.c.id, _settled_rows(issue_id, now))


def _delete_items(
    conn: Connection, before: datetime, batch: int, now: datetime, *, keep_undated: bool
) -> int:
    # One statement deletes and returns what the fingerprints need, so the write lock is taken
    # at once (on SQLite a read first could not upgrade to a write under a concurrent writer).
    # Topics and summaries go with their item (ON DELETE CASCADE).
    old = select(I.c.id).where(*_old_items(before, keep_undated=keep_undated))
    ids = old.limit(batch).scalar_subquery()
    gone = conn.execute(
        delete(I)
        .where(I.c.id.in_(ids))
        .returning(I.c.feed_id, I.c.guid, I.c.canonical_url, I.c.first_seen)
    ).all()
    if gone:
        conn.execute(
            upsert_insert(conn)(F).on_conflict_do_nothing(),
            [
                {
                    "feed_id": r.feed_id,
                    "guid_hash": fingerprint(r.guid),
                    "url_hash": fingerprint(r.canonical_url),
                    "first_seen": r.first_seen,
                    "pruned_at": to_db(now),
                }
                for r in gone
            ],
        )
    return len(gone)


def deliveries_pruned(conn: Connection, issue_id: int) -> datetime | None:
    """When this issue's delivery rows were pruned (it cannot be sent again), or None."""
    value = conn.execute(select(IS.c.deliveries_pruned).where(IS.c.id == issue_id)).scalar()
    return value if isinstance(value, datetime) else None
