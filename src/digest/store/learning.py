"""What the learned topic scorer is taught from the store: the editors' decisions on items.

The ``editor_decisions`` table comes with the editors' desk (its own Alembic revision); a
database without it simply has no decisions to learn from.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, inspect, text


@dataclass(frozen=True)
class EditorLabel:
    """An editor's last word on an item for one topic: kept (keep, pin, add) or dropped."""

    item_id: int
    topic_id: str
    kept: bool
    title: str
    html: str  # the item's content, or its summary when the feed gives no content


def editor_labels(conn: Connection) -> list[EditorLabel]:
    """The latest decision per (item, topic), oldest item first; [] without the table."""
    if not inspect(conn).has_table("editor_decisions"):
        return []
    rows = conn.execute(
        text(
            "SELECT d.item_id, d.topic_id, d.kept, i.title, i.content_html, i.summary_html "
            "FROM editor_decisions d JOIN items i ON i.id = d.item_id ORDER BY d.at, d.id"
        )
    )
    last: dict[tuple[int, str], EditorLabel] = {}
    for item_id, topic_id, kept, title, content, summary in rows:
        key = (int(item_id), str(topic_id))
        last.pop(key, None)  # a later decision replaces it (and moves it last)
        last[key] = EditorLabel(key[0], key[1], bool(kept), str(title), content or summary or "")
    return list(last.values())
