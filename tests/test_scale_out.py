"""Several `digest send` share one issue on PostgreSQL: batches claimed with SKIP LOCKED, a
killed sender's rows taken over, one issue built while the others wait and then join."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from delivery_kit import SECRET, add_people, delivery_states, store_issue
from digest.config import Settings
from digest.pipeline.issue import send_together
from digest.store import Store, open_store, schema
from digest.store.locks import exclusive
from smtp_faults import SlowHandler, fault_server
from test_desk import env  # noqa: F401  (the fixture: a config with [review] required)
from test_fencing import config

DIGEST = [sys.executable, "-c", "from digest.cli import main; main()"]
ENV = {**os.environ, "DIGEST_SECRET": SECRET}


def _start(
    tmp_path: Path, db_url: str, name: str, port: int, *, lock_wait: str = "60s"
) -> subprocess.Popen[bytes]:
    folder = tmp_path / name
    folder.mkdir()
    cfg = config(folder, db_url, port)
    cfg.write_text(cfg.read_text().replace('"60s"', f'"{lock_wait}"'), encoding="utf-8")
    cmd = [*DIGEST, "--config", str(cfg), "send"]
    return subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.postgresql
@pytest.mark.slow
def test_three_senders_share_an_issue_and_survive_one_killed(tmp_path: Path, db_url: str) -> None:
    people = [f"reader{i:04d}@example.org" for i in range(600)]
    store = open_store(db_url)
    store_issue(store)
    add_people(store, people)
    store.close()
    handlers = [SlowHandler(delay=0.005) for _ in range(3)]
    with ExitStack() as stack:
        servers = [stack.enter_context(fault_server(h)) for h in handlers]
        procs = [_start(tmp_path, db_url, f"s{i}", server.port) for i, server in enumerate(servers)]
        deadline = time.monotonic() + 120
        while sum(handlers[0].counts().values()) < 100 and time.monotonic() < deadline:
            time.sleep(0.01)
        procs[0].send_signal(signal.SIGKILL)
        procs[0].wait(30)
        for p in procs[1:]:
            _, err = p.communicate(timeout=180)
            assert p.returncode == 0, err.decode()
        per_sender = [sum(h.counts().values()) for h in handlers]
        total: Counter[str] = Counter()
        for h in handlers:
            total.update(h.counts())
        assert set(total) == set(people)  # everyone has the issue
        assert sum(total.values()) - len(people) <= 2  # the killed one's message on the wire
        for carried in per_sender[1:]:
            assert carried >= 0.15 * len(people), per_sender
        assert delivery_states(db_url) == {"sent": len(people)}

        # A rerun finds nothing left to send.
        rerun = _start(tmp_path, db_url, "rerun", servers[1].port)
        _, err = rerun.communicate(timeout=120)
        assert rerun.returncode == 0, err.decode()
        assert sum(handlers[1].counts().values()) == per_sender[1]


@pytest.mark.postgresql
@pytest.mark.slow
def test_a_sender_finding_an_issue_being_built_waits_for_it_then_joins(
    tmp_path: Path, db_url: str
) -> None:
    people = [f"reader{i:03d}@example.org" for i in range(40)]
    store = open_store(db_url)
    add_people(store, people)
    handler = SlowHandler(delay=0)
    with fault_server(handler) as server:
        # Another sender is building an issue: it holds the lock for that purpose.
        with exclusive(store, purpose="build"):
            joiner = _start(tmp_path, db_url, "joiner", server.port)
            time.sleep(2)
            assert joiner.poll() is None  # waiting (lock_wait is not needed), not exit 2
            store_issue(store)  # the issue the other sender built
        _, err = joiner.communicate(timeout=120)
        assert joiner.returncode == 0, err.decode()
    assert handler.counts() == dict.fromkeys(people, 1)
    assert delivery_states(db_url) == {"sent": len(people)}


def test_on_sqlite_a_second_sender_is_told_one_sends_at_a_time(tmp_path: Path, db_url: str) -> None:
    store = open_store(db_url)
    store_issue(store)
    add_people(store, ["ann@example.org"])
    handler = SlowHandler(delay=0)
    with fault_server(handler) as server, exclusive(store):
        proc = _start(tmp_path, db_url, "second", server.port, lock_wait="0s")
        _, err = proc.communicate(timeout=120)
    if store.is_sqlite:
        assert proc.returncode == 2
        assert b"on SQLite one digest sends at a time" in err
    else:  # PostgreSQL: it joins the unfinished issue the lock holder is delivering
        assert proc.returncode == 0, err.decode()
        assert handler.counts() == {"ann@example.org": 1}


def test_with_review_required_a_shared_send_sends_no_unapproved_draft(
    env: tuple[Settings, Store],  # noqa: F811  (test_desk's fixture)
) -> None:
    settings, store = env
    counts = send_together(settings, store, lease=timedelta(seconds=60))
    assert counts.waiting == 1  # the draft is built and waits for an editor
    assert counts.sent == 0
    with store.connect() as conn:
        assert conn.execute(select(func.count()).select_from(schema.deliveries)).scalar() == 0
