"""One daemon per database: a lease row in ``locks`` that its holder renews and a dead holder loses.

Works the same on SQLite and PostgreSQL: taking the row is an INSERT, or an UPDATE that only
matches an expired lease (or, for a holder seen dead on this host, that exact holder), so exactly
one process wins; no advisory locks, no files beside the db.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from digest.errors import LockedError, StoreError
from digest.store import schema
from digest.store.claims import next_token, release_dead
from digest.store.db import Store
from digest.store.holders import Holder, Liveness, new_holder

log = logging.getLogger(__name__)

#: How often a waiting process tries again (seconds).
_POLL = 0.5


def _now() -> datetime:
    return datetime.now(UTC)


def _utc(value: datetime) -> datetime:
    # SQLite gives back naive datetimes: everything we store is UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class LockInfo:
    """A lock row as read from the database."""

    name: str
    holder: str
    host: str
    pid: int
    since: datetime
    expires: datetime
    #: "run" (a daemon, a send on SQLite) or "build" (a send building an issue on PostgreSQL).
    purpose: str = "run"
    token: int = 0

    @property
    def expired(self) -> bool:
        return self.expires <= _now()

    @property
    def dead(self) -> bool:
        """The holder is on this host and is gone: its lease need not run out."""
        found = Holder.decode(self.holder)
        return found is not None and found.liveness() is Liveness.DEAD

    def describe(self) -> str:
        return f"{self.host} pid {self.pid} since {self.since.isoformat(timespec='seconds')}"


@dataclass(slots=True)
class Lease:
    """The lock we hold: ``lost`` is set when renewal failed (someone else may now hold it)."""

    name: str
    holder: str
    host: str
    pid: int
    since: datetime
    duration: timedelta
    lost: threading.Event = field(default_factory=threading.Event)
    renewals: int = 0
    purpose: str = "run"
    #: Fencing token of this hold: larger than any earlier holder's.
    token: int = 0
    #: The dead holder whose lease this one took over without waiting, if any.
    took_over: LockInfo | None = None


def holder_of(store: Store, name: str = "digest") -> LockInfo | None:
    """The current row for ``name`` (possibly expired), or None when nobody ever took it."""
    with store.connect() as conn:
        row = conn.execute(select(schema.locks).where(schema.locks.c.name == name)).first()
    if row is None:
        return None
    return LockInfo(
        name=row.name,
        holder=row.holder,
        host=row.host,
        pid=row.pid,
        since=_utc(row.since),
        expires=_utc(row.expires),
        purpose=row.purpose,
        token=int(row.token),
    )


#: Name prefix of the rows standby daemons hold while they wait (one row each).
STANDBY_PREFIX = "standby:"


def standbys(store: Store) -> list[LockInfo]:
    """The standby daemons waiting for the lock (rows whose lease is still renewed)."""
    with store.connect() as conn:
        rows = conn.execute(
            select(schema.locks.c.name).where(schema.locks.c.name.like(f"{STANDBY_PREFIX}%"))
        ).scalars()
        names = list(rows)
    found = [holder_of(store, n) for n in names]
    return [i for i in found if i is not None and not i.expired]


def still_held(conn: Connection, lease: Lease) -> bool:
    """Whether ``lease`` is still ours, read in the caller's transaction (fencing a write that
    only the holder may make, such as storing a new issue)."""
    token = conn.execute(
        select(schema.locks.c.token).where(
            schema.locks.c.name == lease.name, schema.locks.c.holder == lease.holder
        )
    ).scalar()
    return token is not None and int(token) == lease.token


def _values(conn: Connection, lease: Lease, now: datetime) -> dict[str, object]:
    lease.token = next_token(conn, f"lock:{lease.name}")
    return {
        "holder": lease.holder,
        "host": lease.host,
        "pid": lease.pid,
        "since": now,
        "expires": now + lease.duration,
        "purpose": lease.purpose,
        "token": lease.token,
    }


def _try_take(store: Store, lease: Lease) -> bool:
    # A lease held by a live holder is read, not written for: a waiting daemon (standby, lock
    # wait) polls every half second, and each write attempt would cost a fencing token and a
    # write transaction competing with the holder's.
    held = holder_of(store, lease.name)
    if held is not None and not held.expired and not held.dead:
        return False
    now = _now()
    # Two statements in two transactions: on PostgreSQL a failed INSERT aborts its transaction.
    try:
        with store.begin() as conn:
            conn.execute(insert(schema.locks).values(name=lease.name, **_values(conn, lease, now)))
    except StoreError as exc:
        if not isinstance(exc.__cause__, IntegrityError):
            raise
    else:
        lease.since = now
        return True
    with store.begin() as conn:
        taken = conn.execute(
            update(schema.locks)
            .where(schema.locks.c.name == lease.name, schema.locks.c.expires <= now)
            .values(**_values(conn, lease, now))
        ).rowcount
    if taken == 1:
        lease.since = now
        return True
    return _take_from_dead(store, lease)


def _take_from_dead(store: Store, lease: Lease) -> bool:
    """Take a live lease whose holder is seen dead on this host (killed, crashed, rebooted)."""
    info = holder_of(store, lease.name)
    if info is None or not info.dead:
        return False
    now = _now()
    released: list[str] = []
    with store.begin() as conn:
        # Only that exact holder: of two processes seeing it dead, one wins.
        taken = conn.execute(
            update(schema.locks)
            .where(schema.locks.c.name == lease.name, schema.locks.c.holder == info.holder)
            .values(**_values(conn, lease, now))
        ).rowcount
        if taken == 1:
            # Its delivery claims too: another sender (or this one) takes those rows at once.
            released = release_dead(conn)
    if taken != 1:
        return False
    lease.since = now
    lease.took_over = info
    if released:
        log.info("released the recipients claimed by %d dead sender(s)", len(released))
    log.warning(
        "took over the database lock from %s: that process is gone",
        info.describe(),
        extra={"lock": lease.name},
    )
    return True


def _renew(store: Store, lease: Lease) -> bool:
    with store.begin() as conn:
        count = conn.execute(
            update(schema.locks)
            .where(schema.locks.c.name == lease.name, schema.locks.c.holder == lease.holder)
            .values(expires=_now() + lease.duration)
        ).rowcount
    return bool(count == 1)


def _release(store: Store, lease: Lease) -> None:
    with store.begin() as conn:
        conn.execute(
            delete(schema.locks).where(
                schema.locks.c.name == lease.name, schema.locks.c.holder == lease.holder
            )
        )


def _renewer(store: Store, lease: Lease, done: threading.Event) -> None:
    interval = lease.duration.total_seconds() / 3
    while not done.wait(interval):
        try:
            ok = _renew(store, lease)
        except StoreError as exc:
            # A database hiccup: keep trying until the lease would have run out.
            log.warning("could not renew the database lock: %s", exc, extra={"lock": lease.name})
            continue
        if not ok:
            log.error(
                "lost the database lock: another process took it",
                extra={"lock": lease.name},
            )
            lease.lost.set()
            return
        lease.renewals += 1


@contextmanager
def exclusive(
    store: Store,
    name: str = "digest",
    *,
    lease: timedelta = timedelta(seconds=60),
    wait: float = 0,
    cancel: threading.Event | None = None,
    purpose: str = "run",
) -> Iterator[Lease]:
    """Hold the lock ``name`` for the block; busy -> wait up to ``wait`` s, then LockedError.

    Setting ``cancel`` (e.g. on SIGTERM) ends the wait early with the same LockedError.

    A background thread renews the lease every ``lease / 3``; a holder killed with SIGKILL stops
    renewing, so after ``lease`` another process may take over, or at once when that holder
    was on this host (same boot and pid namespace) and is seen gone.
    """
    if lease.total_seconds() <= 0:
        raise ValueError("lease must be positive")
    me = new_holder()
    held = Lease(
        name=name,
        holder=me.encode(),
        host=me.host,
        pid=me.pid,
        since=_now(),
        duration=lease,
        purpose=purpose,
    )
    deadline = time.monotonic() + max(wait, 0)
    while not _try_take(store, held):
        if time.monotonic() >= deadline or (cancel is not None and cancel.is_set()):
            info = holder_of(store, name)
            who = info.describe() if info else "another process"
            one_at_a_time = (
                " (on SQLite one digest sends at a time; several senders need PostgreSQL)"
                if store.is_sqlite
                else ""
            )
            raise LockedError(
                f"database {store.url} is in use by {who}{one_at_a_time}; stop that digest "
                f"first, or wait {int(lease.total_seconds())}s for its lease to expire if it died"
            )
        pause = min(_POLL, max(deadline - time.monotonic(), 0.01))
        if cancel is not None:
            cancel.wait(pause)
        else:
            time.sleep(pause)
    log.debug("took the database lock", extra={"lock": name, "holder": held.holder})
    done = threading.Event()
    thread = threading.Thread(
        target=_renewer, args=(store, held, done), name=f"lock-{name}", daemon=True
    )
    thread.start()
    try:
        yield held
    finally:
        done.set()
        thread.join()
        try:
            _release(store, held)
        except StoreError as exc:
            # The lease simply expires: nothing else to do on the way out.
            log.warning("could not release the database lock: %s", exc, extra={"lock": name})
