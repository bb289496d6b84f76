"""`digest send` stopped by SIGTERM finishes the message in hand, exits, and resumes later."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from delivery_kit import SECRET, add_people, delivery_states, smtp_config, store_issue
from digest.store import open_store
from smtp_faults import HoldingHandler, fault_server

DIGEST = [sys.executable, "-c", "from digest.cli import main; main()"]
PEOPLE = [f"reader{i:03d}@example.org" for i in range(60)]


def _config(tmp_path: Path, port: int) -> Path:
    return smtp_config(tmp_path, f"sqlite:///{tmp_path}/d.db", port)


@pytest.mark.slow
def test_sigterm_stops_send_after_the_current_message_and_a_rerun_finishes_exactly_once(
    tmp_path: Path,
) -> None:
    db = f"sqlite:///{tmp_path}/d.db"
    store = open_store(db)
    store_issue(store)
    add_people(store, PEOPLE)
    env = {**os.environ, "DIGEST_SECRET": SECRET}
    handler = HoldingHandler(hold_after=5)
    with fault_server(handler) as server:
        cmd = [*DIGEST, "--config", str(_config(tmp_path, server.port)), "send"]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while len(handler.counts()) < 5 and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        handler.release.set()
        # Generous: finishing the message in hand and exiting is quick, but not on a loaded
        # machine, and the bound only costs time when the command does not stop at all.
        _, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 1, stderr
        assert b"run the same command again to resume" in stderr
        first = handler.counts()
        assert 5 <= sum(first.values()) < len(PEOPLE)
        states = delivery_states(db)
        # The message in hand was finished and recorded: nothing is left in the ambiguous state.
        assert states.get("unknown", 0) == 0
        assert states.get("sent", 0) == sum(first.values())

        rerun = subprocess.run(cmd, env=env, capture_output=True, timeout=120, check=False)
        assert rerun.returncode == 0, rerun.stderr
    assert handler.counts() == dict.fromkeys(PEOPLE, 1)
    assert delivery_states(db) == {"sent": len(PEOPLE)}
