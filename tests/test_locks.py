"""The database lease lock: one holder at a time, named when busy, lost by a dead holder."""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import psutil
import pytest
from sqlalchemy import insert, select, update

from digest.errors import LockedError
from digest.store import Store, open_store, schema
from digest.store.holders import Holder, Liveness, this_process
from digest.store.locks import exclusive, holder_of


def schema_time(offset_seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=offset_seconds)


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def test_the_lock_is_recorded_while_held_and_removed_on_exit(db_url: str) -> None:
    store = open_store(db_url)
    with exclusive(store) as lease:
        info = holder_of(store)
        assert info is not None
        assert info.holder == lease.holder
        assert info.pid == os.getpid()
        assert not info.expired
    assert holder_of(store) is None


def test_a_second_holder_is_refused_with_host_pid_and_since(db_url: str) -> None:
    first, second = open_store(db_url), open_store(db_url)
    with exclusive(first) as lease, pytest.raises(LockedError) as info, exclusive(second):
        pass
    message = str(info.value)
    assert f"is in use by {lease.host} pid {os.getpid()} since " in message
    assert second.url in message
    assert "\n" not in message


def test_the_lock_is_free_again_after_the_holder_leaves(db_url: str) -> None:
    store = open_store(db_url)
    with exclusive(store):
        pass
    with exclusive(open_store(db_url)) as lease:
        assert holder_of(store) is not None
        assert holder_of(store).holder == lease.holder  # type: ignore[union-attr]


def test_a_waiting_process_gets_the_lock_when_the_holder_releases_it(db_url: str) -> None:
    first, second = open_store(db_url), open_store(db_url)
    taken = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with exclusive(first):
            taken.set()
            release.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    assert taken.wait(10)
    threading.Timer(0.3, release.set).start()
    with exclusive(second, wait=20) as lease:
        assert holder_of(second).holder == lease.holder  # type: ignore[union-attr]
    thread.join()


def test_a_wait_ends_early_when_cancelled(db_url: str) -> None:
    first, second = open_store(db_url), open_store(db_url)
    cancel = threading.Event()
    with exclusive(first):
        threading.Timer(0.2, cancel.set).start()
        with (
            pytest.raises(LockedError, match="is in use by"),
            exclusive(second, wait=600, cancel=cancel),
        ):
            pass


def test_an_expired_lease_is_taken_over(db_url: str) -> None:
    store = open_store(db_url)
    with store.begin() as conn:
        conn.execute(
            schema.locks.insert().values(
                name="digest",
                holder="elsewhere:1:x",
                host="elsewhere",
                pid=1,
                since=schema_time(-120),
                expires=schema_time(-60),
            )
        )
    with exclusive(store) as lease:
        assert holder_of(store).holder == lease.holder  # type: ignore[union-attr]


def test_the_lease_is_renewed_while_held(db_url: str) -> None:
    store = open_store(db_url)
    with exclusive(store, lease=timedelta(seconds=0.3)) as lease:
        first_expiry = holder_of(store).expires  # type: ignore[union-attr]
        assert wait_for(lambda: lease.renewals >= 2)
        assert holder_of(store).expires > first_expiry  # type: ignore[union-attr]
        assert not lease.lost.is_set()


def test_a_holder_whose_lease_was_taken_knows_it_lost_the_lock(db_url: str) -> None:
    store = open_store(db_url)
    with exclusive(store, lease=timedelta(seconds=0.3)) as lease:
        with store.begin() as conn:
            conn.execute(update(schema.locks).values(holder="thief:2:y"))
        assert lease.lost.wait(10)
    # Leaving must not delete the thief's row.
    with store.connect() as conn:
        assert conn.execute(select(schema.locks.c.holder)).scalar() == "thief:2:y"


def test_locks_with_different_names_do_not_conflict(db_url: str) -> None:
    store = open_store(db_url)
    with exclusive(store, "digest"), exclusive(store, "other"):
        assert holder_of(store, "other") is not None


# The holder runs a 60 s lease (the default): only its death, seen from this host, frees it early.
HOLDER = """
import sys, time
from datetime import UTC, datetime, timedelta
from digest.store import open_store
from digest.store.locks import exclusive
with exclusive(open_store(sys.argv[1]), lease=timedelta(seconds=60)):
    print("held", flush=True)
    time.sleep(120)
"""


def test_a_holder_killed_with_sigkill_on_this_host_is_taken_over_at_once(db_url: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, db_url], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "held"
        store = open_store(db_url)
        with pytest.raises(LockedError, match=f"pid {proc.pid} since"), exclusive(store):
            pass
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        # 59 s of its lease are left: no waiting, the dead holder's lease is ours now.
        with exclusive(store, wait=0) as lease:
            assert holder_of(store).holder == lease.holder  # type: ignore[union-attr]
            assert lease.took_over is not None
            assert lease.took_over.pid == proc.pid
    finally:
        proc.kill()
        proc.wait()


def _foreign_row(store: Store, holder: Holder, expires_in: float) -> None:
    with store.begin() as conn:
        conn.execute(
            insert(schema.locks).values(
                name="digest",
                holder=holder.encode(),
                host=holder.host,
                pid=holder.pid,
                since=schema_time(-1),
                expires=schema_time(expires_in),
            )
        )


def test_a_holder_on_another_host_keeps_the_lock_until_its_lease_expires(db_url: str) -> None:
    store = open_store(db_url)
    me = this_process("x")
    # Same pid, boot and namespace as a dead process would have, but another machine's.
    elsewhere = dataclasses.replace(me, host="other-host", pid=_a_free_pid())
    _foreign_row(store, elsewhere, expires_in=60)
    with pytest.raises(LockedError, match="other-host pid"), exclusive(store):
        pass
    with store.begin() as conn:
        conn.execute(update(schema.locks).values(expires=schema_time(-1)))
    with exclusive(store) as lease:
        assert lease.took_over is None  # taken because it expired, not because it died


def test_a_row_written_before_holders_were_identified_waits_for_its_expiry(db_url: str) -> None:
    store = open_store(db_url)
    with store.begin() as conn:
        conn.execute(
            insert(schema.locks).values(
                name="digest",
                holder=f"{socket.gethostname()}:{_a_free_pid()}:abcdef12",
                host=socket.gethostname(),
                pid=_a_free_pid(),
                since=schema_time(-1),
                expires=schema_time(60),
            )
        )
    with pytest.raises(LockedError), exclusive(store):
        pass


def _a_free_pid() -> int:
    pid = 4_000_000
    while psutil.pid_exists(pid):
        pid -= 1
    return pid


def test_a_holder_is_alive_dead_or_unknown_from_where_this_process_stands() -> None:
    me = this_process("x")
    assert me.liveness() is Liveness.ALIVE
    assert dataclasses.replace(me, pid=_a_free_pid()).liveness() is Liveness.DEAD
    # Our pid, but a process that started earlier: the pid was reused, the holder is dead.
    assert dataclasses.replace(me, started=me.started - 3600).liveness() is Liveness.DEAD
    # This host booted since that holder ran: it is gone whatever its pid.
    assert dataclasses.replace(me, boot_id="another-boot").liveness() is Liveness.DEAD
    # Another container on this host: its pids are not ours to look at.
    assert dataclasses.replace(me, pid_ns="pid:[1]").liveness() is Liveness.UNKNOWN
    assert dataclasses.replace(me, host="elsewhere").liveness() is Liveness.UNKNOWN


def test_a_holder_survives_encoding() -> None:
    me = this_process("abc123")
    assert Holder.decode(me.encode()) == dataclasses.replace(me, started=round(me.started, 2))
    assert Holder.decode("host:123:abcdef12") is None


def test_asking_for_a_live_holders_lock_writes_nothing_and_spends_no_fencing_token(
    db_url: str,
) -> None:
    """A standby daemon polls twice a second for as long as the active one lives."""
    first, second = open_store(db_url), open_store(db_url)
    with exclusive(first) as lease:
        for _ in range(5):
            with pytest.raises(LockedError), exclusive(second):
                pass
        with first.connect() as conn:
            counter = conn.execute(
                select(schema.fence.c.value).where(schema.fence.c.name == "lock:digest")
            ).scalar_one()
        assert counter == lease.token
