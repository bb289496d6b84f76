"""Any number of digests can start together on an empty database: the schema is created once,
under a lock (PostgreSQL advisory lock, SQLite BEGIN IMMEDIATE), and none fails on it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from digest.store import open_store, schema

DIGEST = [sys.executable, "-c", "from digest.cli import main; main()"]


@pytest.mark.slow
def test_ten_processes_started_together_on_an_empty_database_all_succeed(
    tmp_path: Path, db_url: str
) -> None:
    cfg = tmp_path / "digest.toml"
    cfg.write_text(f'[storage]\nurl = "{db_url}"\n', encoding="utf-8")
    env = {**os.environ, "DIGEST_SECRET": "schema-race-secret-0123456789abcdef"}
    # Each waits for the word "go" on stdin after importing everything, so that all ten reach
    # open_store within milliseconds of one another rather than one import time apart.
    start = (
        "import sys; from digest.cli import main; sys.stdin.readline(); "
        f"main(['--config', {str(cfg)!r}, 'subscribers', 'list'])"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", start],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(10)
    ]
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    results = [(p.wait(timeout=120), p.communicate()[1]) for p in procs]
    assert [code for code, _ in results] == [0] * 10, [err for _, err in results if err]
    with open_store(db_url).connect() as conn:
        assert conn.execute(select(func.count()).select_from(schema.meta)).scalar() == 1
