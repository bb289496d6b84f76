"""Benchmark (issue 10): one good feed beside a 20,000-item feed and the other hostile shapes.

Serves, from a local HTTP server: a good feed; a flood of 20,000 near-identical on-topic items
("Cloud souverain numéro N SecNumCloud"); items with invalid links (http://1.2.3.04/a...); NULs,
control characters and a 40-character <language>; a feed that 302s to a cloud metadata
address; a 500; and a topic with the regex term ``(a+)+$`` beside an item of 34 "a" and "!".
Times ``digest fetch`` then ``digest preview`` (each a fresh process: wall time, CPU and peak
RSS), with the shipped ``[fetch] max_items_per_feed`` and with the cap lifted to 20,000 (so
the issue builder itself meets every flood item).

Run: ``.venv/bin/python benchmarks/hostile.py [--flood 20000]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

NOW = datetime.now(UTC)


def rss(items: list[tuple[str, str, str]], *, language: str = "fr", title: str = "Feed") -> bytes:
    """RSS bytes; items are (guid, link, title); values go in raw (hostile ones included)."""
    body = "".join(
        f"<item><title>{t}</title><link>{link}</link><guid isPermaLink='false'>{g}</guid>"
        f"<pubDate>{format_datetime(NOW - timedelta(minutes=n + 5))}</pubDate>"
        "<description>Le ministère confie ses données sensibles à un hébergeur qualifié "
        "SecNumCloud, loin des hyperscalers américains.</description></item>"
        for n, (g, link, t) in enumerate(items)
    )
    return (
        "<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel>"
        f"<title>{title}</title><language>{language}</language>{body}</channel></rss>"
    ).encode()


def feeds(flood: int) -> dict[str, tuple[int, dict[str, str], bytes]]:
    """path -> (status, headers, body)."""
    good = rss(
        [
            (f"g{i}", f"https://good.example/{i}", f"Cloud souverain : l'État signe l'accord {i}")
            for i in range(10)
        ],
        title="Good",
    )
    flooding = rss(
        [
            (f"f{n}", f"https://flood.example/{n}", f"Cloud souverain numéro {n} SecNumCloud")
            for n in range(flood)
        ],
        title="Flood",
    )
    invalid = rss(
        [
            ("i1", "http://1.2.3.04/a", "SecNumCloud : lien invalide 1"),
            ("i2", "http://0177.0.0.1/", "SecNumCloud : lien invalide 2"),
            ("i3", "http://[v1.x]/", "SecNumCloud : lien invalide 3"),
        ],
        title="Invalid links",
    )
    odd = rss(
        [
            ("o1", "https://odd.example/1", "SecNumCloud &#0; titre\x01 avec NUL"),
            ("o2", "https://odd.example/2", "a" * 34 + "!"),
        ],
        language="en-us-x-" + "abcdefgh-" * 4 + "z",
        title="Odd text",
    )
    return {
        "/good.xml": (200, {"Content-Type": "application/rss+xml"}, good),
        "/flood.xml": (200, {"Content-Type": "application/rss+xml"}, flooding),
        "/invalid.xml": (200, {"Content-Type": "application/rss+xml"}, invalid),
        "/odd.xml": (200, {"Content-Type": "application/rss+xml"}, odd),
        "/metadata.xml": (302, {"Location": "http://169.254.169.254/latest/meta-data/"}, b""),
        "/500.xml": (500, {}, b"oops"),
    }


def serve(routes: dict[str, tuple[int, dict[str, str], bytes]]) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, headers, body = routes.get(self.path, (404, {}, b""))
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def write_config(folder: Path, base: str, cap: int | None, database: str | None) -> Path:
    sqlite = f"sqlite:///{folder / 'hostile.db'}"
    lines = [
        "[digest]",
        'title = "Hostile benchmark"',
        "max_items_per_topic = 10",
        "",
        "[storage]",
        f'url = "{database or sqlite}"',
        "",
        "[delivery]",
        'mode = "outbox"',
        f'outbox_dir = "{folder / "outbox"}"',
        "",
        "[fetch]",
        "parse_workers = 1",
        *([f"max_items_per_feed = {cap}"] if cap else []),
        "",
        "[topics.sovereign_cloud]",
        'title = "Sovereign cloud"',
        'include = ["cloud souverain", "SecNumCloud", "regex: (a+)+$"]',
        "",
    ]
    for path in ("good", "flood", "invalid", "odd", "metadata", "500"):
        # Served on 127.0.0.1: allowed per feed, as an intranet feed would be.
        lines += ["[[feeds]]", f'url = "{base}/{path}.xml"', "allow_private = true", ""]
    config = folder / "hostile.toml"
    config.write_text("\n".join(lines), encoding="utf-8")
    return config


def digest_command() -> list[str]:
    exe = Path(sys.executable).with_name("digest")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "digest"]


def run_measured(config: Path, *args: str) -> tuple[float, float, float, int, str]:
    """One digest command in a fresh process: (wall s, CPU s, peak RSS MiB, exit, first line)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(
            [*digest_command(), "--config", str(config), *args],
            stdout=out,
            stderr=err,
            cwd=config.parent,
        )
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage (peak RSS)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        said = out.read().decode("utf-8", "replace").strip().splitlines()
        logged = err.read().decode("utf-8", "replace").strip().splitlines()
    if "Traceback (most recent call last):" in logged:
        print("\n".join(logged[-30:]), file=sys.stderr)
    cpu = usage.ru_utime + usage.ru_stime
    line = " | ".join(said[:3]) if said else (logged[-1] if logged else "")
    return wall, cpu, usage.ru_maxrss / 1024, proc.returncode, line[:300]


def empty(url: str) -> None:
    from sqlalchemy import MetaData

    from digest.store import open_store

    store = open_store(url)
    meta = MetaData()
    meta.reflect(store.engine)
    with store.begin() as conn:
        for table in reversed(meta.sorted_tables):
            if table.name not in ("alembic_version", "meta"):
                conn.execute(table.delete())
    store.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--flood", type=int, default=20_000, help="items in the flooding feed")
    ap.add_argument(
        "--database",
        help="an empty database URL to use instead of a new SQLite file (e.g. PostgreSQL); "
        "its tables are emptied before each run",
    )
    args = ap.parse_args()
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores")
    server = serve(feeds(args.flood))
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        for label, cap in (("shipped cap (200)", None), (f"cap lifted ({args.flood})", args.flood)):
            with tempfile.TemporaryDirectory() as tmp:
                if args.database:
                    empty(args.database)
                config = write_config(Path(tmp), base, cap, args.database)
                print(f"-- {label}")
                for command in (("fetch",), ("preview", "--out", str(Path(tmp) / "next.html"))):
                    wall, cpu, rss_mib, code, line = run_measured(config, *command)
                    print(
                        f"   digest {command[0]:<8} {wall:6.2f} s wall {cpu:6.2f} s CPU "
                        f"{rss_mib:6.0f} MiB peak RSS  exit {code}  {line}"
                    )
    finally:
        server.shutdown()


if __name__ == "__main__":
    main()
