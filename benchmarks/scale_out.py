"""Senders that scale out: 1, 2 and 4 `digest send` processes sharing one issue on PostgreSQL.

    .ci/with-postgres .venv/bin/python benchmarks/scale_out.py            # 4,000 subscribers
    .ci/with-postgres .venv/bin/python benchmarks/scale_out.py --big      # + 100,000 with 4
    .ci/with-postgres .venv/bin/python benchmarks/scale_out.py --subscribers 3000 --kill-after 600
    DIGEST_TEST_DATABASE_URL=postgresql://… .venv/bin/python benchmarks/scale_out.py --workers 1 4

Each worker is a `digest send` with one SMTP connection to its own local sink
(benchmarks/smtp_sink.py) that holds every message 40 ms before its 250: a slow relay, not the
CPU, is the limit, so one worker tops out near 25 messages/s. Every round uses a fresh database
with one stored issue; the workers start together and the round ends when all have exited.
Prints messages per second (over the sending window: first to last message received, and over
the whole round including start-up), the ratio to 1 worker, each worker's share and peak RSS,
and the missing and duplicate counts (both must be 0).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "src"), str(ROOT / "benchmarks")]
SECRET = "scale-out-benchmark-secret-0123456789abcdef"
DIGEST = [sys.executable, "-c", "from digest.cli import main; main()"]
HOLD = 0.040


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fresh_database(admin_url: str) -> tuple[str, str]:
    from sqlalchemy import create_engine, text

    from digest.store.db import database_url

    base = database_url(admin_url)
    name = f"digest_bench_{uuid.uuid4().hex[:12]}"
    engine = create_engine(base, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return name, base.set(database=name).render_as_string(hide_password=False)


def drop_database(admin_url: str, name: str) -> None:
    from sqlalchemy import create_engine, text

    from digest.store.db import database_url

    engine = create_engine(database_url(admin_url), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


def prepare(url: str, subscribers: int) -> None:
    from delivery_kit import add_people, store_issue
    from digest.store import open_store

    store = open_store(url)
    store_issue(store)
    add_people(store, [f"reader{i:06d}@example.org" for i in range(subscribers)])
    store.close()


def read(record: Path) -> list[tuple[str, float]]:
    if not record.exists():
        return []
    out = []
    for line in record.read_text(encoding="utf-8").splitlines():
        parts = line.split("\t")
        if len(parts) == 3:
            out.append((parts[0].lower(), float(parts[2])))
    return out


def lines(record: Path) -> int:
    try:
        with record.open("rb") as f:
            return sum(1 for _ in f)
    except FileNotFoundError:
        return 0


def round_(
    admin_url: str, workers: int, subscribers: int, folder: Path, kill_after: int = 0
) -> dict[str, object]:
    from delivery_kit import smtp_config

    name, url = fresh_database(admin_url)
    try:
        prepare(url, subscribers)
        sinks, records, procs = [], [], []
        for i in range(workers):
            port = free_port()
            record = folder / f"n{subscribers}-w{workers}-{i}.tsv"
            sink = subprocess.Popen(
                [
                    sys.executable,
                    str(ROOT / "benchmarks" / "smtp_sink.py"),
                    "--port",
                    str(port),
                    "--record",
                    str(record),
                    "--hold",
                    str(HOLD),
                    "--stamp",
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            assert sink.stdout is not None
            assert sink.stdout.readline().strip() == "ready"
            sinks.append(sink)
            records.append(record)
            wfolder = folder / f"n{subscribers}-w{workers}-{i}"
            wfolder.mkdir()
            procs.append((wfolder, smtp_config(wfolder, url, port)))
        env = {**os.environ, "DIGEST_SECRET": SECRET}
        started = time.time()
        running = [
            subprocess.Popen(
                [*DIGEST, "--config", str(cfg), "send"],
                env=env,
                cwd=wfolder,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            for wfolder, cfg in procs
        ]
        peak = dict.fromkeys(range(workers), 0)
        killed = False
        while any(p.poll() is None for p in running):
            if kill_after and not killed and lines(records[0]) >= kill_after:
                running[0].kill()  # SIGKILL mid-issue: the others take its rows over
                killed = True
            for i, p in enumerate(running):
                with contextlib.suppress(psutil.Error):  # it just exited
                    peak[i] = max(peak[i], psutil.Process(p.pid).memory_info().rss)
            time.sleep(0.5)
        ended = time.time()
        codes = [p.returncode for p in running]
        rerun_sent = 0
        if kill_after:
            # A rerun (through the first survivor's sink) must find nothing left to send.
            before = lines(records[1])
            subprocess.run(
                [*DIGEST, "--config", str(procs[1][1]), "send"],
                env=env,
                cwd=procs[1][0],
                capture_output=True,
                check=False,
                timeout=300,
            )
            time.sleep(0.5)
            rerun_sent = lines(records[1]) - before
        errors = [p.stderr.read().decode()[-400:] for p in running if p.stderr and p.returncode]
        for sink in sinks:
            sink.terminate()
            sink.wait(30)
        got = [read(r) for r in records]
        everyone: Counter[str] = Counter(rcpt for g in got for rcpt, _ in g)
        stamps = [t for g in got for _, t in g]
        window = max(stamps) - min(stamps) if stamps else 0.0
        total = sum(everyone.values())
        return {
            "workers": workers,
            "codes": codes,
            "errors": errors,
            "messages": total,
            "rate": total / window if window else 0.0,
            "rate_wall": total / (ended - started),
            "wall": ended - started,
            "shares": [len(g) for g in got],
            "missing": subscribers - len(everyone),
            "duplicates": total - len(everyone),
            "peak_mib": [round(peak[i] / 2**20, 1) for i in range(workers)],
            "rerun_sent": rerun_sent,
        }
    finally:
        drop_database(admin_url, name)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--subscribers", type=int, default=4000)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--big", action="store_true", help="then 100,000 subscribers with 4 workers")
    p.add_argument(
        "--kill-after",
        type=int,
        default=0,
        help="instead: 3 workers, SIGKILL the first once its sink has this many messages",
    )
    p.add_argument(
        "--quick", action="store_true", help="300 subscribers, 1 and 2 workers (make bench)"
    )
    args = p.parse_args()
    if args.quick:
        args.subscribers, args.workers, args.big = 300, [1, 2], False
    admin = os.environ.get("DIGEST_TEST_DATABASE_URL")
    if not admin:
        print("set DIGEST_TEST_DATABASE_URL, or run under .ci/with-postgres", file=sys.stderr)
        return 2
    if args.kill_after:
        with tempfile.TemporaryDirectory() as tmp:
            r = round_(admin, 3, args.subscribers, Path(tmp), kill_after=args.kill_after)
        n = args.subscribers
        print(
            f"{n} subscribers, 3 workers, the first SIGKILLed after {args.kill_after}: "
            f"shares {r['shares']} ({', '.join(f'{x / n:.0%}' for x in r['shares'])}), "  # type: ignore[attr-defined]
            f"missing {r['missing']}, duplicates {r['duplicates']}, exit codes {r['codes']}, "
            f"rerun sent {r['rerun_sent']}",
            flush=True,
        )
        return 0
    plan = [(w, args.subscribers) for w in args.workers]
    if args.big:
        plan.append((4, 100_000))
    base: float | None = None
    with tempfile.TemporaryDirectory() as tmp:
        for workers, subscribers in plan:
            r = round_(admin, workers, subscribers, Path(tmp))
            rate = float(r["rate"])  # type: ignore[arg-type]
            if workers == 1 and subscribers == args.subscribers:
                base = rate
            ratio = f"{rate / base:.2f}x" if base else "-"
            print(
                f"{subscribers} subscribers, {workers} worker(s): {rate:.1f} msg/s "
                f"(ratio {ratio}; {float(r['rate_wall']):.1f} msg/s over {float(r['wall']):.1f} s "  # type: ignore[arg-type]
                f"with start-up), shares {r['shares']}, missing {r['missing']}, duplicates "
                f"{r['duplicates']}, peak RSS MiB {r['peak_mib']}, exit codes {r['codes']}",
                flush=True,
            )
            for e in r["errors"]:  # type: ignore[attr-defined]
                print("  worker error:", e.strip().splitlines()[-1], flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
