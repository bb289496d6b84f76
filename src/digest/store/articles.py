"""Article pages' text kept with their item (``items.full_text``): fetched once for a teaser,
used for its topic decision, ``explain`` and its summary.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, select, update

from digest.store import schema
from digest.store.text import fit

__all__ = ["load_full_texts", "save_full_text"]


def save_full_text(conn: Connection, item_id: int, text: str) -> None:
    """Keep the article text fetched for an item."""
    it = schema.items
    conn.execute(update(it).where(it.c.id == item_id).values(full_text=fit(text)))


def load_full_texts(conn: Connection, item_ids: Iterable[int]) -> dict[int, str]:
    """The article texts kept for these items (items without one are left out)."""
    it = schema.items
    ids = list(item_ids)
    out: dict[int, str] = {}
    for start in range(0, len(ids), 500):  # stay under SQLite's bound-parameter limit
        rows = conn.execute(
            select(it.c.id, it.c.full_text).where(
                it.c.id.in_(ids[start : start + 500]), it.c.full_text.is_not(None)
            )
        )
        out.update({int(r.id): str(r.full_text) for r in rows})
    return out
