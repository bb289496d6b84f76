"""Per-recipient delivery state of each issue: pending -> sent | retry | failed | unknown | skipped.

The unique (issue, subscriber) row is the "never twice" guarantee: a row becomes ``sent`` only
after the server's 250, and is marked ``unknown`` (in flight) before the message is handed over.
Rows are claimed, marked and written through ``store.claims`` (fenced by the claim's token).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select, update

from digest.models import DeliveryState, SubscriberStatus
from digest.store import schema
from digest.store.db import upsert_insert
from digest.store.items import as_utc, to_db

D = schema.deliveries
S = schema.subscribers
I = schema.issues  # noqa: E741

#: States that still need a message to be handed over.
OPEN_STATES = (DeliveryState.PENDING, DeliveryState.RETRY, DeliveryState.UNKNOWN)
#: The states shown by ``digest deliveries --json`` (skipped rows are reported apart).
REPORTED_STATES = ("sent", "pending", "retry", "failed", "unknown")


@dataclass(frozen=True, slots=True)
class DueDelivery:
    """A delivery row to act on now, with what is needed to build its message."""

    id: int
    state: DeliveryState
    attempts: int
    message_id: str
    subscriber_id: int
    email: str
    name: str | None
    status: SubscriberStatus
    topics: tuple[str, ...]
    language: str | None
    token_key: str


def missing_recipients(
    conn: Connection, issue_id: int, *, after: int, limit: int
) -> list[tuple[int, str]]:
    """Active subscribers (id > ``after``) without a delivery row for this issue yet."""
    has_row = select(D.c.id).where(D.c.issue_id == issue_id, D.c.subscriber_id == S.c.id).exists()
    rows = conn.execute(
        select(S.c.id, S.c.token_key)
        .where(S.c.status == SubscriberStatus.ACTIVE.value, S.c.id > after, ~has_row)
        .order_by(S.c.id)
        .limit(limit)
    ).all()
    return [(int(r[0]), str(r[1])) for r in rows]


def last_subscriber_id(conn: Connection) -> int:
    return int(conn.execute(select(func.max(S.c.id))).scalar() or 0)


def insert_pending(
    conn: Connection, issue_id: int, rows: Sequence[tuple[int, str]], now: datetime
) -> int:
    """Create pending rows ``(subscriber_id, message_id)``; existing ones are left alone."""
    if not rows:
        return 0
    stmt = (
        upsert_insert(conn)(D)
        .values(
            [
                {
                    "issue_id": issue_id,
                    "subscriber_id": sid,
                    "state": DeliveryState.PENDING.value,
                    "attempts": 0,
                    "message_id": mid,
                    "updated": to_db(now),
                }
                for sid, mid in rows
            ]
        )
        .on_conflict_do_nothing(index_elements=["issue_id", "subscriber_id"])
    )
    return int(conn.execute(stmt).rowcount or 0)


def due_rows(conn: Connection, *conditions: Any, limit: int | None = None) -> list[DueDelivery]:
    """Delivery rows matching ``conditions``, in id order, with their subscriber."""
    query = (
        select(
            D.c.id,
            D.c.state,
            D.c.attempts,
            D.c.message_id,
            S.c.id.label("sid"),
            S.c.email,
            S.c.name,
            S.c.status,
            S.c.topics,
            S.c.language,
            S.c.token_key,
        )
        .join(S, S.c.id == D.c.subscriber_id)
        .where(*conditions)
        .order_by(D.c.id)
        .limit(limit)
    )
    return [
        DueDelivery(
            id=r.id,
            state=DeliveryState(r.state),
            attempts=r.attempts,
            message_id=r.message_id,
            subscriber_id=r.sid,
            email=r.email,
            name=r.name,
            status=SubscriberStatus(r.status),
            topics=tuple(t for t in (r.topics or "").split(";") if t),
            language=r.language,
            token_key=r.token_key,
        )
        for r in conn.execute(query)
    ]


def counts(conn: Connection, issue_id: int) -> dict[str, int]:
    """Rows per state for one issue (every state present, zeros included)."""
    out = {s.value: 0 for s in DeliveryState}
    rows = conn.execute(
        select(D.c.state, func.count()).where(D.c.issue_id == issue_id).group_by(D.c.state)
    )
    for state, n in rows:
        out[str(state)] = int(n)
    return out


def failures(conn: Connection, issue_id: int, *, limit: int = 1000) -> list[tuple[str, str]]:
    """(address, reason) of the failed rows of one issue."""
    rows = conn.execute(
        select(S.c.email, D.c.last_error)
        .join(S, S.c.id == D.c.subscriber_id)
        .where(D.c.issue_id == issue_id, D.c.state == DeliveryState.FAILED.value)
        .order_by(D.c.id)
        .limit(limit)
    )
    return [(str(e), str(err or "")) for e, err in rows]


def next_retry(conn: Connection, issue_id: int) -> datetime | None:
    """When the earliest retry of this issue is due, if any."""
    value = conn.execute(
        select(func.min(D.c.next_attempt)).where(
            D.c.issue_id == issue_id, D.c.state == DeliveryState.RETRY.value
        )
    ).scalar()
    return None if value is None else as_utc(value)


def open_count(conn: Connection, issue_id: int) -> int:
    return int(
        conn.execute(
            select(func.count()).where(
                D.c.issue_id == issue_id, D.c.state.in_([s.value for s in OPEN_STATES])
            )
        ).scalar()
        or 0
    )


def unfinished_issue_numbers(conn: Connection) -> list[int]:
    """Issues whose delivery has not been completed, oldest first."""
    rows = conn.execute(select(I.c.number).where(I.c.status != "done").order_by(I.c.number))
    return [int(n) for (n,) in rows]


def latest_issue_number(conn: Connection) -> int | None:
    value = conn.execute(select(func.max(I.c.number))).scalar()
    return None if value is None else int(value)


def bounce_failing(conn: Connection, delivery_ids: Sequence[int], *, after: int) -> list[str]:
    """Mark ``bounced`` the active subscribers of these (failed) rows whose last ``after``
    deliveries all failed for good; returns their addresses. A bounced subscriber gets no more
    issues until they confirm a new sign-up (their address works again) or an operator acts."""
    if not delivery_ids or after < 1:
        return []
    sids = sorted(
        {
            int(s)
            for (s,) in conn.execute(
                select(D.c.subscriber_id).where(D.c.id.in_(list(delivery_ids)))
            )
        }
    )
    bounced: list[str] = []
    for sid in sids:
        last = conn.execute(
            select(D.c.state)
            .where(D.c.subscriber_id == sid, D.c.state != DeliveryState.SKIPPED.value)
            .order_by(D.c.issue_id.desc())
            .limit(after)
        ).scalars()
        states = list(last)
        if len(states) < after or any(s != DeliveryState.FAILED.value for s in states):
            continue
        changed = conn.execute(
            update(S)
            .where(S.c.id == sid, S.c.status == SubscriberStatus.ACTIVE.value)
            .values(status=SubscriberStatus.BOUNCED.value)
        ).rowcount
        if changed:
            email = conn.execute(select(S.c.email).where(S.c.id == sid)).scalar()
            bounced.append(str(email))
    return bounced
