"""Second sightings of a stored link: another feed carrying an article already stored (its
canonical URL is unique) is recorded as coverage of that item, for "also covered by".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import Connection, func, select

from digest.models import Item
from digest.store import schema
from digest.store.db import upsert_insert
from digest.store.items import to_db
from digest.store.text import fit

__all__ = ["load_sightings", "record_sightings"]


def record_sightings(
    conn: Connection, feed_id: int, items: Iterable[Item], *, now: datetime
) -> list[tuple[int, Item]]:
    """Record the items of ``feed_id`` whose link another feed's item already holds; returns
    ``(stored item id, the item as this feed gave it)`` for the sightings new to the store.

    Items of this feed stored before (its own guid) are not sightings.
    """
    by_canonical: dict[str, Item] = {}
    for item in items:
        by_canonical.setdefault(fit(item.canonical_url, 8192), item)
    if not by_canonical:
        return []
    it = schema.items
    owners: dict[str, int] = {}
    keys = list(by_canonical)
    for start in range(0, len(keys), 500):  # stay under SQLite's bound-parameter limit
        rows = conn.execute(
            select(it.c.id, it.c.canonical_url).where(
                it.c.canonical_url.in_(keys[start : start + 500]), it.c.feed_id != feed_id
            )
        )
        owners.update({str(r.canonical_url): int(r.id) for r in rows})
    if not owners:
        return []
    rows_in = [
        {
            "item_id": item_id,
            "feed_id": feed_id,
            "url": fit(by_canonical[key].url, 8192),
            "title": fit(by_canonical[key].title, 1000),
            "first_seen": to_db(now),
        }
        for key, item_id in owners.items()
    ]
    si = schema.item_sightings
    stmt = upsert_insert(conn)(si).on_conflict_do_nothing().returning(si.c.item_id)
    new = {int(r.item_id) for r in conn.execute(stmt, rows_in)}
    return [(item_id, by_canonical[key]) for key, item_id in owners.items() if item_id in new]


_SOURCE = func.coalesce(schema.feeds.c.name, schema.feeds.c.title, schema.feeds.c.url)


def load_sightings(conn: Connection, item_ids: Sequence[int]) -> dict[int, list[tuple[str, str]]]:
    """Per item, the other sources that carried its link: ``(source name, their link)``, in the
    order they were met."""
    si = schema.item_sightings
    out: dict[int, list[tuple[str, str]]] = {}
    ids = list(item_ids)
    for start in range(0, len(ids), 500):
        rows = conn.execute(
            select(si.c.item_id, si.c.url, _SOURCE.label("source"))
            .join(schema.feeds, schema.feeds.c.id == si.c.feed_id)
            .where(si.c.item_id.in_(ids[start : start + 500]))
            .order_by(si.c.first_seen, si.c.feed_id)
        )
        for r in rows:
            out.setdefault(int(r.item_id), []).append((str(r.source), str(r.url)))
    return out
