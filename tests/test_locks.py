"""The database lease lock: one holder at a time, named when busy, lost by a dead holder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from digest.errors import LockedError
from digest.store import open_store, schema
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


# A 3 s lease: with 1 s, a holder whose renewal thread was starved for a second on a loaded
# machine lost its lock before the test could see it held.
HOLDER = """
import sys, time
from datetime import UTC, datetime, timedelta
from digest.store import open_store
from digest.store.locks import exclusive
with exclusive(open_store(sys.argv[1]), lease=timedelta(seconds=3)):
    print("held", flush=True)
    time.sleep(60)
"""


def test_a_holder_killed_with_sigkill_loses_the_lock_when_its_lease_expires(
    db_url: str,
) -> None:
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
        # The dead holder's row stays until its lease runs out; then it is ours.
        with exclusive(store, wait=30) as lease:
            assert holder_of(store).holder == lease.holder  # type: ignore[union-attr]
    finally:
        proc.kill()
        proc.wait()
