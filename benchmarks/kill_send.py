"""Crash safety: SIGKILL ``digest send`` at random moments while it delivers one issue.

    .venv/bin/python benchmarks/kill_send.py [--subscribers 2000] [--kills 10] [--seed N]

One stored issue, 2,000 subscribers, a local SMTP sink in its own process recording every
message it accepts. ``digest send`` is started, killed with SIGKILL at a random moment once
sending is under way, restarted, ten times; then run to the end. The sink's record must hold
each recipient exactly once; resends of the ambiguous window (killed after the end of DATA,
before the 250 was recorded) are counted and reported.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "src"), str(ROOT / "benchmarks")]
SECRET = "kill-benchmark-secret-0123456789abcdef"
DIGEST = [sys.executable, "-c", "from digest.cli import main; main()"]


def received(record: Path) -> list[tuple[str, str]]:
    if not record.exists():
        return []
    lines = record.read_text(encoding="utf-8").splitlines()
    return [(r.lower(), m) for r, m in (line.split("\t", 1) for line in lines if "\t" in line)]


def states(db: Path) -> Counter[str]:
    import sqlite3

    with sqlite3.connect(db) as conn:
        return Counter(dict(conn.execute("SELECT state, count(*) FROM deliveries GROUP BY state")))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--subscribers", type=int, default=2000)
    p.add_argument("--kills", type=int, default=10)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--connections", type=int, default=2)
    p.add_argument(
        "--max-delay",
        type=float,
        default=0.4,
        help="kill between 0 and this many seconds after the round's first message arrives",
    )
    p.add_argument(
        "--quick", action="store_true", help="small sizes: a check that it runs (make bench)"
    )
    args = p.parse_args()
    if args.quick:  # small sizes; options given explicitly still win
        p.set_defaults(subscribers=200, kills=3, seed=1)
        args = p.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1_000_000)
    rng = random.Random(seed)
    os.environ["DIGEST_SECRET"] = SECRET
    from send import prepare_db, start_sink, stop_sink

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        db, record = tmp / "d.db", tmp / "received.tsv"
        prepare_db(db, args.subscribers)
        sink, port = start_sink(record)
        cfg = tmp / "digest.toml"
        cfg.write_text(
            f'[storage]\nurl = "sqlite:///{db}"\n'
            '[digest]\ntitle = "Veille numérique"\nlanguage = "fr"\n'
            'base_url = "https://news.example.org"\n'
            '[delivery]\nmode = "smtp"\nfrom = "Veille <veille@news.example.org>"\n'
            f'[smtp]\nhost = "127.0.0.1"\nport = {port}\nsecurity = "none"\n'
            f"connections = {args.connections}\n"
            # A killed holder's lease must lapse quickly for the restart to take over.
            '[daemon]\nlock_lease = "2s"\nlock_wait = "20s"\n',
            encoding="utf-8",
        )
        env = {**os.environ, "DIGEST_SECRET": SECRET, "PYTHONPATH": str(ROOT / "src")}
        cmd = [*DIGEST, "--quiet", "--config", str(cfg), "send"]
        unknown_at_restart: list[int] = []
        print(f"seed {seed}: {args.subscribers} subscribers, {args.kills} kills")
        t0 = time.perf_counter()
        try:
            for round_ in range(1, args.kills + 1):
                before = len(received(record))
                proc = subprocess.Popen(
                    cmd,
                    env=env,
                    cwd=tmp,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                # Kill once sending is under way, at a random point (or give up waiting).
                deadline = time.monotonic() + 30
                while len(received(record)) == before and time.monotonic() < deadline:
                    if proc.poll() is not None:
                        break
                    time.sleep(0.005)
                time.sleep(rng.uniform(0.0, args.max_delay))
                if proc.poll() is None:
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    how = "killed"
                else:
                    how = f"exited {proc.returncode}"
                assert proc.stderr is not None
                err = proc.stderr.read().strip()
                s = states(db)
                unknown_at_restart.append(s.get("unknown", 0))
                print(
                    f"round {round_:2}: {how}; sink has {len(received(record)):5}; "
                    f"rows sent {s.get('sent', 0):5}, unknown {s.get('unknown', 0)}, "
                    f"pending {s.get('pending', 0)}" + (f"; stderr: {err[-200:]}" if err else "")
                )
            final = subprocess.run(cmd, env=env, cwd=tmp, capture_output=True, text=True)
            print(
                f"final run: exit {final.returncode} {final.stdout.strip()} {final.stderr.strip()}"
            )
        finally:
            stop_sink(sink)
        elapsed = time.perf_counter() - t0
        got = received(record)
        per = Counter(r for r, _ in got)
        ids: defaultdict[str, set[str]] = defaultdict(set)
        for r, m in got:
            ids[r].add(m)
        expected = {f"r{i}@example.org" for i in range(args.subscribers)}
        missing = expected - set(per)
        twice = {r: n for r, n in per.items() if n > 1}
        same_id = all(len(ids[r]) == 1 for r in twice)
        s = states(db)
        print(
            f"\n{len(got)} messages for {len(per)} recipients in {elapsed:.0f} s "
            f"({args.kills} SIGKILLs); final states {dict(s)}"
        )
        print(f"missing: {len(missing)}; exactly once: {sum(1 for n in per.values() if n == 1)}")
        print(
            f"resent after a kill (rows left 'unknown'): {sum(unknown_at_restart)}; "
            f"delivered twice (killed after the end of DATA, before the 250 was recorded): "
            f"{len(twice)}" + (f" {sorted(twice)} same Message-ID: {same_id}" if twice else "")
        )
        ok = not missing and set(per) == expected and s.get("sent", 0) == args.subscribers
        print("OK" if ok else "FAILED")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
