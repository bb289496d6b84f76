"""The draft of the next issue (entries, pinned lead, replaced summaries, note, approval) and the
editors' decisions about items: plain functions over ``drafts``, ``draft_entries`` and
``editor_decisions``. At most one draft is ``open`` at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, delete, func, select, update

from digest.store import schema
from digest.store.items import as_utc, to_db

__all__ = [
    "Decision",
    "DraftEntryRow",
    "DraftRow",
    "add_entry",
    "create_draft",
    "decisions",
    "entries_of",
    "open_draft",
    "record_decision",
    "remove_entry",
    "set_draft",
    "set_entry_summary",
]

#: An editor's action on an item and whether it keeps the item for the topic.
ACTIONS = {"keep": True, "pin": True, "add": True, "drop": False}


@dataclass(frozen=True, slots=True)
class DraftRow:
    id: int
    number: int
    status: str
    created: datetime
    built_at: datetime
    period_start: datetime
    period_end: datetime
    note: str
    lead_item_id: int | None
    approved_by: str | None
    approved_at: datetime | None
    notified_at: datetime | None
    reminded_at: datetime | None
    updated: datetime

    @property
    def approved(self) -> bool:
        return self.approved_at is not None


@dataclass(frozen=True, slots=True)
class DraftEntryRow:
    item_id: int
    topic_id: str
    position: int = 0
    origin: str = "filter"
    score: float = 0.0
    summary: str | None = None
    also_ids: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Decision:
    item_id: int
    topic_id: str
    action: str
    kept: bool
    editor: str
    at: datetime
    issue_number: int | None


def _utc(value: Any) -> datetime | None:
    return None if value is None else as_utc(value)


def _draft(row: Row[Any]) -> DraftRow:
    m = row._mapping
    return DraftRow(
        id=m["id"],
        number=m["number"],
        status=m["status"],
        created=as_utc(m["created"]),
        built_at=as_utc(m["built_at"]),
        period_start=as_utc(m["period_start"]),
        period_end=as_utc(m["period_end"]),
        note=m["note"] or "",
        lead_item_id=m["lead_item_id"],
        approved_by=m["approved_by"],
        approved_at=_utc(m["approved_at"]),
        notified_at=_utc(m["notified_at"]),
        reminded_at=_utc(m["reminded_at"]),
        updated=as_utc(m["updated"]),
    )


def open_draft(conn: Connection) -> DraftRow | None:
    """The draft under review, if any."""
    d = schema.drafts
    row = conn.execute(select(d).where(d.c.status == "open").order_by(d.c.id.desc())).first()
    return _draft(row) if row else None


def get_draft(conn: Connection, draft_id: int) -> DraftRow | None:
    row = conn.execute(select(schema.drafts).where(schema.drafts.c.id == draft_id)).first()
    return _draft(row) if row else None


def create_draft(
    conn: Connection,
    *,
    number: int,
    now: datetime,
    period_start: datetime,
    period_end: datetime,
    entries: Sequence[DraftEntryRow],
) -> DraftRow:
    """Store a new open draft and its entries (in the given order)."""
    draft_id = conn.execute(
        schema.drafts.insert()
        .values(
            number=number,
            status="open",
            created=to_db(now),
            built_at=to_db(now),
            period_start=to_db(period_start),
            period_end=to_db(period_end),
            note="",
            updated=to_db(now),
        )
        .returning(schema.drafts.c.id)
    ).scalar_one()
    for position, entry in enumerate(entries):
        _insert_entry(conn, int(draft_id), entry, position)
    found = get_draft(conn, int(draft_id))
    assert found is not None
    return found


def _insert_entry(conn: Connection, draft_id: int, entry: DraftEntryRow, position: int) -> None:
    conn.execute(
        schema.draft_entries.insert().values(
            draft_id=draft_id,
            item_id=entry.item_id,
            topic_id=entry.topic_id,
            position=position,
            origin=entry.origin,
            score=entry.score,
            summary=entry.summary,
            also_ids=",".join(str(i) for i in entry.also_ids),
        )
    )


def entries_of(conn: Connection, draft_id: int) -> list[DraftEntryRow]:
    """The draft's entries in their order."""
    e = schema.draft_entries
    rows = conn.execute(
        select(e).where(e.c.draft_id == draft_id).order_by(e.c.position, e.c.item_id)
    )
    return [
        DraftEntryRow(
            item_id=m["item_id"],
            topic_id=m["topic_id"],
            position=m["position"],
            origin=m["origin"],
            score=float(m["score"] or 0.0),
            summary=m["summary"],
            also_ids=tuple(int(x) for x in (m["also_ids"] or "").split(",") if x),
        )
        for m in (r._mapping for r in rows)
    ]


def add_entry(conn: Connection, draft_id: int, entry: DraftEntryRow) -> None:
    """Append ``entry`` at the end (replacing the same item's entry if it was there)."""
    e = schema.draft_entries
    remove_entry(conn, draft_id, entry.item_id)
    top = conn.execute(select(func.max(e.c.position)).where(e.c.draft_id == draft_id)).scalar()
    _insert_entry(conn, draft_id, entry, int(top if top is not None else -1) + 1)


def remove_entry(conn: Connection, draft_id: int, item_id: int) -> bool:
    e = schema.draft_entries
    result = conn.execute(delete(e).where(e.c.draft_id == draft_id, e.c.item_id == item_id))
    return bool(result.rowcount)


def set_entry_summary(conn: Connection, draft_id: int, item_id: int, summary: str) -> bool:
    e = schema.draft_entries
    result = conn.execute(
        update(e).where(e.c.draft_id == draft_id, e.c.item_id == item_id).values(summary=summary)
    )
    return bool(result.rowcount)


def set_draft(conn: Connection, draft_id: int, **values: Any) -> None:
    """Update columns of a draft (datetimes converted for the database)."""
    clean = {k: to_db(v) if isinstance(v, datetime) else v for k, v in values.items()}
    conn.execute(update(schema.drafts).where(schema.drafts.c.id == draft_id).values(**clean))


# --------------------------------------------------------------------------- decisions


def record_decision(
    conn: Connection,
    *,
    item_id: int,
    topic_id: str,
    action: str,
    editor: str,
    now: datetime,
    issue_number: int | None,
) -> None:
    """One editor's decision about an item for a topic (keep, drop, pin or add)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown editor action {action!r}")
    conn.execute(
        schema.editor_decisions.insert().values(
            item_id=item_id,
            topic_id=topic_id,
            action=action,
            kept=ACTIONS[action],
            editor=editor,
            at=to_db(now),
            issue_number=issue_number,
        )
    )


def decisions(
    conn: Connection, *, issue_number: int | None = None, limit: int | None = None
) -> list[Decision]:
    """Editors' decisions, oldest first (one issue's, or all)."""
    d = schema.editor_decisions
    stmt = select(d).order_by(d.c.at, d.c.id)
    if issue_number is not None:
        stmt = stmt.where(d.c.issue_number == issue_number)
    if limit is not None:
        stmt = stmt.limit(limit)
    return [
        Decision(
            item_id=m["item_id"],
            topic_id=m["topic_id"],
            action=m["action"],
            kept=bool(m["kept"]),
            editor=m["editor"],
            at=as_utc(m["at"]),
            issue_number=m["issue_number"],
        )
        for m in (r._mapping for r in conn.execute(stmt))
    ]
