"""Bounces and complaints as recorded: one row per (report, subscriber); which delivery a
report is about (by Message-ID, by issue and subscriber, or the latest one); counts."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, and_, func, select

from digest.store import schema
from digest.store.db import upsert_insert
from digest.store.items import to_db

B = schema.bounces
D = schema.deliveries
I = schema.issues  # noqa: E741
S = schema.subscribers

#: Every kind a row may have, for zero-filled counts.
KINDS = ("hard", "soft", "policy", "complaint", "unsubscribe")


def record(
    conn: Connection,
    *,
    subscriber_id: int,
    issue_id: int | None,
    kind: str,
    status: str | None,
    diagnostic: str | None,
    report_id: str,
    now: datetime,
) -> bool:
    """Insert one row; False when this report was already recorded for this subscriber."""
    stmt = (
        upsert_insert(conn)(B)
        .values(
            subscriber_id=subscriber_id,
            issue_id=issue_id,
            kind=kind,
            status=status,
            diagnostic=diagnostic,
            report_id=report_id,
            received=to_db(now),
        )
        .on_conflict_do_nothing(index_elements=["report_id", "subscriber_id"])
        # RETURNING, not rowcount: psycopg reports -1 for an INSERT … ON CONFLICT DO NOTHING.
        .returning(B.c.id)
    )
    return conn.execute(stmt).first() is not None


def soft_count(conn: Connection, subscriber_id: int, since: datetime) -> int:
    """Soft bounces of this subscriber received since ``since``."""
    q = select(func.count()).where(
        B.c.subscriber_id == subscriber_id, B.c.kind == "soft", B.c.received >= to_db(since)
    )
    return int(conn.execute(q).scalar() or 0)


def counts(conn: Connection) -> dict[str, int]:
    """Rows per kind, every kind present (zeros included)."""
    found: dict[str, int] = dict(
        conn.execute(select(B.c.kind, func.count()).group_by(B.c.kind)).all()
    )
    return {k: int(found.get(k, 0)) for k in KINDS}


def by_message_id(conn: Connection, message_id: str) -> tuple[int, int] | None:
    """(issue id, subscriber id) of the delivery that sent this Message-ID."""
    row = conn.execute(
        select(D.c.issue_id, D.c.subscriber_id).where(D.c.message_id == message_id).limit(1)
    ).first()
    return None if row is None else (int(row[0]), int(row[1]))


def by_issue_number(conn: Connection, number: int, subscriber_id: int) -> tuple[int, int] | None:
    """(issue id, subscriber id) for a return-path token, when that delivery exists."""
    row = conn.execute(
        select(D.c.issue_id, D.c.subscriber_id)
        .join(I, I.c.id == D.c.issue_id)
        .where(and_(I.c.number == number, D.c.subscriber_id == subscriber_id))
    ).first()
    return None if row is None else (int(row[0]), int(row[1]))


def latest_delivery(conn: Connection, subscriber_id: int) -> int | None:
    """Id of the latest issue handed over to this subscriber (sent or in flight)."""
    value = conn.execute(
        select(func.max(D.c.issue_id)).where(
            D.c.subscriber_id == subscriber_id, D.c.state.in_(("sent", "unknown", "failed"))
        )
    ).scalar()
    return None if value is None else int(value)
