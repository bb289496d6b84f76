"""Delivery claims: a sender takes a batch of due rows under a fencing token and writes to a row
only while that token is still the row's (a stale sender's writes change nothing).

Tokens come from ``fence``, a counter that only grows. On PostgreSQL several senders claim at
once (``FOR UPDATE SKIP LOCKED``: none waits for another's batch); on SQLite there is one writer.
A claim expires (``claim_expires``) unless its sender keeps sending; an expired claim, or one
whose owner is seen dead on this host, may be taken by another sender.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, bindparam, func, or_, select, update

from digest.models import DeliveryState
from digest.store import schema
from digest.store.db import upsert_insert
from digest.store.deliveries import DueDelivery, due_rows
from digest.store.holders import Holder, Liveness
from digest.store.items import as_utc, to_db

D = schema.deliveries
F = schema.fence

#: Order in which open states are claimed: resends of the ambiguous window first.
CLAIM_ORDER = (DeliveryState.UNKNOWN, DeliveryState.RETRY, DeliveryState.PENDING)
_OPEN = [s.value for s in CLAIM_ORDER]


def next_token(conn: Connection, name: str = "claims") -> int:
    """The next value of counter ``name`` (1, 2, ...), taken inside the caller's transaction."""
    ins = upsert_insert(conn)
    conn.execute(ins(F).values(name=name, value=0).on_conflict_do_nothing(index_elements=["name"]))
    # The UPDATE holds the row until commit: two transactions never get the same value.
    conn.execute(update(F).where(F.c.name == name).values(value=F.c.value + 1))
    return int(conn.execute(select(F.c.value).where(F.c.name == name)).scalar_one())


def _free(now: datetime) -> Any:
    return or_(D.c.claim_token.is_(None), D.c.claim_expires <= to_db(now))


def claim(
    conn: Connection,
    issue_id: int,
    *,
    token: int,
    owner: str,
    until: datetime,
    now: datetime,
    limit: int,
) -> list[DueDelivery]:
    """Claim up to ``limit`` due rows nobody holds (in flight first, then due retries, then
    pending), in id order; returns them with what their messages need."""
    taken = 0
    for state in CLAIM_ORDER:
        if taken >= limit:
            break
        conditions = [D.c.issue_id == issue_id, D.c.state == state.value, _free(now)]
        if state is DeliveryState.RETRY:
            conditions.append(or_(D.c.next_attempt.is_(None), D.c.next_attempt <= to_db(now)))
        ids = select(D.c.id).where(*conditions).order_by(D.c.id).limit(limit - taken)
        if conn.dialect.name == "postgresql":
            # Rows another sender is claiming right now are skipped, not waited for.
            ids = ids.with_for_update(skip_locked=True)
        taken += int(
            conn.execute(
                update(D)
                .where(D.c.id.in_(ids.scalar_subquery()))
                .values(claim_token=token, claim_owner=owner, claim_expires=to_db(until))
            ).rowcount
            or 0
        )
    if not taken:
        return []
    rows = due_rows(conn, D.c.claim_token == token)
    order = {s: i for i, s in enumerate(CLAIM_ORDER)}
    return sorted(rows, key=lambda r: (order.get(r.state, 9), r.id))


def admit(conn: Connection, row_id: int, *, token: int, until: datetime, now: datetime) -> bool:
    """Mark one claimed row in flight (``unknown``) if the claim is still ours; extend the claim.

    False: the claim is gone (it expired and another sender took it, or it was released);
    the message must not be sent.
    """
    marked = conn.execute(
        update(D)
        .where(D.c.id == row_id, D.c.claim_token == token, D.c.state.in_(_OPEN))
        .values(state=DeliveryState.UNKNOWN.value, updated=to_db(now))
    ).rowcount
    if marked != 1:
        return False
    # Sending keeps the whole batch: its rows expire only once this sender stops sending.
    conn.execute(update(D).where(D.c.claim_token == token).values(claim_expires=to_db(until)))
    return True


def apply(conn: Connection, changes: Sequence[dict[str, Any]], *, token: int, now: datetime) -> int:
    """Write each change (``id`` plus columns; ``release`` gives the claim back) to rows still
    claimed with ``token``; returns how many were written (others belong to another sender)."""
    by_shape: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for change in changes:
        row: dict[str, Any] = {
            k: (to_db(v) if isinstance(v, datetime) else v) for k, v in change.items()
        }
        keep = not bool(row.pop("release", True))
        state = row.get("state")
        if isinstance(state, DeliveryState):
            row["state"] = state.value
        row["updated"] = to_db(now)
        if not keep:
            row |= {"claim_token": None, "claim_owner": None, "claim_expires": None}
        shape = tuple(sorted(row))
        params = {f"b_{k}": v for k, v in row.items()}
        params["b_token"] = token
        by_shape.setdefault(shape, []).append(params)
    written = 0
    for shape, rows in by_shape.items():
        stmt = (
            update(D)
            .where(D.c.id == bindparam("b_id"), D.c.claim_token == bindparam("b_token"))
            .values({k: bindparam(f"b_{k}") for k in shape if k != "id"})
        )
        for one in rows:  # one row each: rowcount says which writes the fence refused
            written += int(conn.execute(stmt, one).rowcount or 0)
    return written


def release(conn: Connection, owner: str) -> int:
    """Give back every claim of ``owner`` (a run ending, or a dead process's claims)."""
    return int(
        conn.execute(
            update(D)
            .where(D.c.claim_token.is_not(None), D.c.claim_owner == owner)
            .values(claim_token=None, claim_owner=None, claim_expires=None)
        ).rowcount
        or 0
    )


def release_dead(conn: Connection) -> list[str]:
    """Release the claims of owners seen dead on this host; returns those owners."""
    owners = conn.execute(
        select(D.c.claim_owner).where(D.c.claim_token.is_not(None)).distinct()
    ).scalars()
    dead = []
    for owner in owners:
        holder = Holder.decode(owner or "")
        if holder is not None and holder.liveness() is Liveness.DEAD:
            release(conn, owner)
            dead.append(owner)
    return dead


def others_hold_until(conn: Connection, issue_id: int, owner: str) -> datetime | None:
    """When the last open row another sender holds would expire (None: nobody else holds any)."""
    value = conn.execute(
        select(func.max(D.c.claim_expires)).where(
            and_(
                D.c.issue_id == issue_id,
                D.c.claim_token.is_not(None),
                D.c.claim_owner != owner,
                D.c.state.in_(_OPEN),
            )
        )
    ).scalar()
    return None if value is None else as_utc(value)


def claimed_by(conn: Connection, issue_id: int) -> dict[str, int]:
    """Open rows per claim owner (for status and tests)."""
    rows = conn.execute(
        select(D.c.claim_owner, func.count())
        .where(D.c.issue_id == issue_id, D.c.claim_token.is_not(None))
        .group_by(D.c.claim_owner)
    )
    return {str(o): int(n) for o, n in rows}


__all__ = [
    "admit",
    "apply",
    "claim",
    "claimed_by",
    "next_token",
    "others_hold_until",
    "release",
    "release_dead",
]
