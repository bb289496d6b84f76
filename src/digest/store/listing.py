"""Stored items with their topic decisions, for editors: `digest items list`, the draft's near
misses and the items new since a draft was built. Filtering happens in SQL.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, exists, not_, or_, select

from digest.models import StoredItem
from digest.store import schema
from digest.store.items import _item_select, _row_to_stored, as_utc, to_db

__all__ = ["ListedItem", "issued_item_ids", "list_items", "scored_items"]


@dataclass(frozen=True, slots=True)
class ListedItem:
    """A stored item, when it was first seen, and its score and verdict per topic."""

    stored: StoredItem
    first_seen: datetime
    topics: dict[str, tuple[float, bool]]

    @property
    def kept_by(self) -> list[str]:
        """Topics that kept it, best score first."""
        kept = [(s, t) for t, (s, k) in self.topics.items() if k]
        return [t for _, t in sorted(kept, key=lambda p: (-p[0], p[1]))]


def _decision(topic: str | None, *conds: ColumnElement[bool]) -> ColumnElement[bool]:
    it = schema.item_topics.c
    where = [it.item_id == schema.items.c.id, *conds]
    if topic is not None:
        where.append(it.topic_id == topic)
    return exists().where(and_(*where))


def _in_an_issue() -> ColumnElement[bool]:
    ii = schema.issue_items.c
    return exists().where(ii.item_id == schema.items.c.id)


def list_items(
    conn: Connection,
    *,
    since: datetime | None = None,
    kept: bool | None = None,
    topic: str | None = None,
    first_seen_after: datetime | None = None,
    exclude: Iterable[int] = (),
    not_issued: bool = False,
    limit: int | None = None,
) -> list[ListedItem]:
    """Items newest first (by publication date).

    ``since``: published at or after; ``kept``: True kept by a topic (``topic`` when given),
    False kept by none (not by ``topic``); ``topic`` alone: items it kept or scored above 0.
    """
    it = schema.item_topics.c
    items = schema.items.c
    conds: list[ColumnElement[bool]] = []
    if since is not None:
        conds.append(items.published >= to_db(since))
    if first_seen_after is not None:
        conds.append(items.first_seen > to_db(first_seen_after))
    if kept is True:
        conds.append(_decision(topic, it.kept.is_(True)))
    elif kept is False:
        conds.append(not_(_decision(topic, it.kept.is_(True))))
    elif topic is not None:
        conds.append(_decision(topic, or_(it.kept.is_(True), it.score > 0)))
    skip = list(exclude)
    if skip:
        conds.append(items.id.not_in(skip))
    if not_issued:
        conds.append(not_(_in_an_issue()))
    stmt = (
        _item_select().where(and_(True, *conds)).order_by(items.published.desc(), items.id.desc())
    )
    if limit is not None:
        stmt = stmt.limit(limit)
    rows = conn.execute(stmt).all()
    verdicts = _verdicts(conn, [r._mapping["id"] for r in rows])
    return [
        ListedItem(
            _row_to_stored(r),
            as_utc(r._mapping["first_seen"]),
            verdicts.get(r._mapping["id"], {}),
        )
        for r in rows
    ]


def _verdicts(conn: Connection, ids: list[int]) -> dict[int, dict[str, tuple[float, bool]]]:
    out: dict[int, dict[str, tuple[float, bool]]] = {}
    it = schema.item_topics
    for start in range(0, len(ids), 500):  # stay under SQLite's bound-parameter limit
        chunk = ids[start : start + 500]
        rows = conn.execute(
            select(it.c.item_id, it.c.topic_id, it.c.score, it.c.kept).where(
                it.c.item_id.in_(chunk)
            )
        )
        for item_id, topic_id, score, kept in rows:
            out.setdefault(item_id, {})[topic_id] = (float(score), bool(kept))
    return out


def scored_items(
    conn: Connection,
    *,
    topic: str,
    min_score: float,
    first_seen_after: datetime | None,
    first_seen_until: datetime,
    not_before: datetime,
    limit: int = 50,
) -> list[tuple[StoredItem, float, bool]]:
    """Items of a period that ``topic`` scored at least ``min_score``, best first, not yet in an
    issue: (item, score, kept by the topic)."""
    it = schema.item_topics.c
    items = schema.items.c
    conds: list[Any] = [
        it.topic_id == topic,
        it.score >= min_score,
        items.first_seen <= to_db(first_seen_until),
        items.published >= to_db(not_before),
        not_(_in_an_issue()),
    ]
    if first_seen_after is not None:
        conds.append(items.first_seen > to_db(first_seen_after))
    stmt = (
        _item_select()
        .add_columns(it.score.label("topic_score"), it.kept.label("topic_kept"))
        .join(schema.item_topics, it.item_id == items.id)
        .where(and_(*conds))
        .order_by(it.score.desc(), items.published.desc(), items.id)
        .limit(limit)
    )
    return [
        (_row_to_stored(r), float(r._mapping["topic_score"]), bool(r._mapping["topic_kept"]))
        for r in conn.execute(stmt)
    ]


def issued_item_ids(conn: Connection, ids: Iterable[int]) -> set[int]:
    """Those of ``ids`` that some issue already carried."""
    wanted = list(ids)
    out: set[int] = set()
    ii = schema.issue_items.c
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        out.update(int(r[0]) for r in conn.execute(select(ii.item_id).where(ii.item_id.in_(chunk))))
    return out
