"""Sign-up bookkeeping for the web front: per-IP attempts over a sliding hour, and the
"at most one confirmation email per address per hour" rule on ``subscribers.confirm_sent_at``.

IP addresses are never stored: callers pass a keyed hash (``tokens.keyed_hash``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, delete, func, insert, or_, select, update

from digest.store.items import as_utc, to_db
from digest.store.schema import signup_attempts, subscribers


def record_attempt(conn: Connection, ip_hash: str, at: datetime) -> None:
    """Remember one sign-up attempt from the (hashed) address ``ip_hash``."""
    conn.execute(insert(signup_attempts).values(ip_hash=ip_hash, at=to_db(at)))


def count_attempts(conn: Connection, ip_hash: str, since: datetime) -> int:
    """Attempts from ``ip_hash`` at or after ``since``."""
    stmt = (
        select(func.count())
        .select_from(signup_attempts)
        .where(signup_attempts.c.ip_hash == ip_hash, signup_attempts.c.at >= to_db(since))
    )
    return int(conn.execute(stmt).scalar_one())


def attempt_allowed(
    conn: Connection, ip_hash: str, now: datetime, *, limit: int, window: timedelta
) -> bool:
    """Record this attempt and say whether it is within ``limit`` per ``window``.

    Recording first and counting after (in one transaction) means two concurrent requests can
    never both slip under the limit; refused attempts count too, so a flood stays refused.
    """
    record_attempt(conn, ip_hash, now)
    return count_attempts(conn, ip_hash, now - window) <= limit


def prune_attempts(conn: Connection, before: datetime) -> int:
    """Forget attempts older than ``before`` (they no longer count); returns rows deleted."""
    result = conn.execute(delete(signup_attempts).where(signup_attempts.c.at < to_db(before)))
    return int(result.rowcount or 0)


def prune_pending(conn: Connection, before: datetime) -> int:
    """Forget sign-ups never confirmed whose last confirmation email went out (or, without one,
    that were made) before ``before``: their link has expired, so they can never become
    subscribers, and an address nobody confirmed is not kept. Returns rows deleted."""
    last = func.coalesce(subscribers.c.confirm_sent_at, subscribers.c.created)
    result = conn.execute(
        delete(subscribers).where(
            subscribers.c.status == "pending",
            subscribers.c.confirmed_at.is_(None),
            last < to_db(before),
        )
    )
    return int(result.rowcount or 0)


def claim_confirmation(
    conn: Connection, subscriber_id: int, now: datetime, *, interval: timedelta
) -> datetime | None:
    """Mark a confirmation email as sent now unless one went out less than ``interval`` ago.

    Returns the stored send time (which the confirmation token is bound to), or None when the
    address already got one within ``interval``. A single conditional UPDATE, so two requests
    racing for the same address cannot both win.
    """
    stamp = now.astimezone(UTC).replace(microsecond=0)
    result = conn.execute(
        update(subscribers)
        .where(
            subscribers.c.id == subscriber_id,
            or_(
                subscribers.c.confirm_sent_at.is_(None),
                subscribers.c.confirm_sent_at <= stamp - interval,
            ),
        )
        .values(confirm_sent_at=stamp)
    )
    return stamp if result.rowcount == 1 else None


def confirm_sent_at(conn: Connection, subscriber_id: int) -> datetime | None:
    """When the last confirmation email was sent to this subscriber (UTC), if ever."""
    row = conn.execute(
        select(subscribers.c.confirm_sent_at).where(subscribers.c.id == subscriber_id)
    ).first()
    return as_utc(row[0]) if row and row[0] is not None else None


def release_confirmation(conn: Connection, subscriber_id: int, stamp: datetime) -> None:
    """Undo ``claim_confirmation`` when the email could not be handed over, so a retry works."""
    conn.execute(
        update(subscribers)
        .where(subscribers.c.id == subscriber_id, subscribers.c.confirm_sent_at == stamp)
        .values(confirm_sent_at=None)
    )
