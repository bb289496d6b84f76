"""A sender frozen mid-issue (SIGSTOP: a VM pause, a long GC) that wakes up after another sender
took over never sends again: nobody is missing and at most one copy per connection is extra."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import text

from delivery_kit import SECRET, add_people, delivery_states, smtp_config, store_issue
from digest.store import open_store
from digest.store.db import database_url
from smtp_faults import SlowHandler, fault_server

DIGEST = [sys.executable, "-c", "from digest.cli import main; main()"]
PEOPLE = [f"reader{i:04d}@example.org" for i in range(300)]


# A short lease, so the second sender does not wait a minute for the frozen one's to run out.
SHORT_LEASE = '[daemon]\nlock_lease = "2s"\nlock_wait = "60s"\n'


def config(tmp_path: Path, db_url: str, port: int, *, connections: int = 1) -> Path:
    return smtp_config(tmp_path, db_url, port, connections=connections, daemon=SHORT_LEASE)


def holds_no_transaction(db_url: str) -> Callable[[], bool]:
    """Whether no other session is inside a transaction (so a frozen process blocks nobody).

    A process frozen inside a transaction keeps its locks: SQLite's write lock, a PostgreSQL
    row lock. Operators bound that with PostgreSQL's idle_in_transaction_session_timeout; the
    test simply freezes the sender between two transactions.
    """
    url = database_url(db_url)
    if url.get_backend_name() == "sqlite":

        def sqlite_free() -> bool:
            db = sqlite3.connect(str(url.database), timeout=0.2)
            try:
                db.execute("BEGIN IMMEDIATE")
                db.rollback()
                return True
            except sqlite3.OperationalError:
                return False
            finally:
                db.close()

        return sqlite_free
    store = open_store(db_url, create=False)

    def pg_free() -> bool:
        with store.connect() as conn:
            busy = conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid() AND xact_start IS NOT NULL"
                )
            ).scalar()
        return busy == 0

    return pg_free


def freeze(proc: subprocess.Popen[bytes], free: Callable[[], bool]) -> None:
    """SIGSTOP ``proc`` at a moment it holds no database transaction."""
    for _ in range(500):
        proc.send_signal(signal.SIGSTOP)
        time.sleep(0.05)
        if free():
            return
        proc.send_signal(signal.SIGCONT)
        time.sleep(0.01)
    raise AssertionError("the sender was always inside a transaction")


@pytest.mark.slow
def test_a_frozen_sender_that_thaws_after_a_takeover_never_sends_again(
    tmp_path: Path, db_url: str
) -> None:
    store = open_store(db_url)
    store_issue(store)
    add_people(store, PEOPLE)
    store.close()
    env = {**os.environ, "DIGEST_SECRET": SECRET}
    handler = SlowHandler()
    with fault_server(handler) as server:
        cmd = [*DIGEST, "--config", str(config(tmp_path, db_url, server.port)), "send"]
        first = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while sum(handler.counts().values()) < 50 and time.monotonic() < deadline:
            time.sleep(0.02)
        freeze(first, holds_no_transaction(db_url))
        try:
            at_freeze = sum(handler.counts().values())
            assert at_freeze < len(PEOPLE), "the first sender finished before it was frozen"
            # The second waits out the frozen one's lease and its claims, then ends the issue.
            second = subprocess.run(cmd, env=env, capture_output=True, timeout=180, check=False)
            assert second.returncode == 0, second.stderr.decode()
        finally:
            first.send_signal(signal.SIGCONT)
        _, err = first.communicate(timeout=60)
        # Woken up: it finds its claim gone, sends nothing more and says so.
        assert first.returncode == 1, err.decode()
        assert b"lost its claim" in err, err.decode()
        time.sleep(0.5)  # a message the thawed sender had on the wire lands now, if any
    counts = handler.counts()
    assert set(counts) == set(PEOPLE)  # 0 missing
    assert sum(counts.values()) - len(PEOPLE) <= 2  # at most 2 duplicates
    assert delivery_states(db_url) == {"sent": len(PEOPLE)}
