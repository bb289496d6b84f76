"""Soak test: the real daemon for N minutes (default 30) against 200 local feeds and an SMTP sink.

Fetch every minute (feeds gain an item each minute), send every 5 minutes to 50 subscribers;
prints the daemon's RSS at start and end (target: flat within 10 %) and the errors (target: 0).
Run: ``.venv/bin/python benchmarks/soak.py [--minutes 30] [--feeds 200] [--subscribers 50]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import socket
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

import psutil
from aiosmtpd.controller import Controller

REPO = Path(__file__).resolve().parent.parent
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)

WORDS = [
    "cloud",
    "souverain",
    "données",
    "personnelles",
    "hébergement",
    "sécurité",
    "réseau",
    "règlement",
    "europe",
    "sovereign",
    "hosting",
    "regulator",
    "market",
    "infrastructure",
    "provider",
    "contract",
    "public",
    "sector",
    "encryption",
    "audit",
    "ministère",
    "commission",
    "autorité",
    "transfert",
    "startup",
    "energy",
    "football",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- feeds


def feed_body(index: int, minute: int, items: int = 20) -> bytes:
    """Feed ``index`` as it stands at ``minute``: the last ``items`` items, one new per minute."""
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>',
        f"<title>Soak feed {index}</title><link>https://feed{index}.example/</link>",
        "<description>soak</description>",
    ]
    for n in range(minute, minute - items, -1):
        seed = index * 7919 + n
        words = [WORDS[(seed * k) % len(WORDS)] for k in range(1, 40)]
        # One item in ten is on topic, so every issue has something to send.
        topic = "GDPR personal data " if seed % 10 == 0 else ""
        text = (topic + " ".join(words)).capitalize() + "."
        when = format_datetime(EPOCH + timedelta(minutes=n))
        parts.append(
            f"<item><title>{topic}Item {n} of feed {index}: {' '.join(words[:6])}</title>"
            f"<link>https://feed{index}.example/{n}</link><guid>f{index}-{n}</guid>"
            f"<pubDate>{when}</pubDate><description>&lt;p&gt;{text} {text}&lt;/p&gt;"
            "</description></item>"
        )
    parts.append("</channel></rss>")
    return "".join(parts).encode()


class FeedHandler(BaseHTTPRequestHandler):
    requests = 0

    def do_GET(self) -> None:
        FeedHandler.requests += 1
        try:
            index = int(self.path.strip("/").removesuffix(".xml").split("/")[-1])
        except ValueError:
            self.send_error(404)
            return
        minute = int((datetime.now(UTC) - EPOCH).total_seconds() // 60)
        etag = f'"{index}-{minute}"'
        if self.headers.get("If-None-Match") == etag:
            self.send_response(304)
            self.send_header("ETag", etag)
            self.end_headers()
            return
        body = feed_body(index, minute)
        self.send_response(200)
        self.send_header("Content-Type", "application/rss+xml")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", etag)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Sink:
    """SMTP handler that counts messages (keeps none: the sink must not grow either)."""

    def __init__(self) -> None:
        self.messages = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.messages += 1
        return "250 OK"


# --------------------------------------------------------------------------- run


def rss_mib(pid: int) -> tuple[float, float]:
    """(daemon RSS, RSS of its child processes) in MiB."""
    proc = psutil.Process(pid)
    own = proc.memory_info().rss
    children = 0
    for child in proc.children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            children += child.memory_info().rss
    return own / 2**20, children / 2**20


def write_config(root: Path, feed_port: int, smtp_port: int, http_port: int, feeds: int) -> Path:
    lines = [
        '[digest]\ntitle = "Soak"\ntimezone = "UTC"\nwindow_days = 30\n',
        '[storage]\nurl = "sqlite:///var/soak.db"\n',
        '[schedule]\nfetch = "* * * * *"\nsend = "*/5 * * * *"\ncatch_up = "10m"\n',
        f'[daemon]\nhttp = "127.0.0.1:{http_port}"\n',
        '[delivery]\nmode = "smtp"\nfrom = "Soak <soak@example.org>"\n',
        f'[smtp]\nhost = "127.0.0.1"\nport = {smtp_port}\nsecurity = "none"\n'
        'password_env = "SOAK_NO_PASSWORD"\n',
        '[topics.data_protection]\ntitle = "Data protection"\n'
        'include = ["GDPR", "personal data"]\n',
    ]
    for i in range(feeds):
        lines.append(
            f'[[feeds]]\nurl = "http://127.0.0.1:{feed_port}/feed/{i}.xml"\nallow_private = true\n'
        )
    path = root / "soak.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def add_subscribers(root: Path, count: int) -> None:
    code = (
        "import sys\n"
        "from digest.store import open_store\n"
        "from digest.store.subscribers import add_subscriber\n"
        "store = open_store('sqlite:///var/soak.db')\n"
        "with store.begin() as conn:\n"
        f"    for i in range({count}):\n"
        "        add_subscriber(conn, f'reader{i}@example.org')\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=root, check=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--feeds", type=int, default=200)
    ap.add_argument("--subscribers", type=int, default=50)
    ap.add_argument("--sample", type=float, default=10.0, help="seconds between RSS samples")
    ap.add_argument("--json", action="store_true", help="print the summary as JSON")
    ap.add_argument(
        "--quick", action="store_true", help="small sizes: a check that it runs (make bench)"
    )
    args = ap.parse_args()
    if args.quick:  # small sizes; options given explicitly still win
        ap.set_defaults(minutes=1.2, feeds=20, subscribers=5, sample=5.0)
        args = ap.parse_args()

    root = Path(tempfile.mkdtemp(prefix="digest-soak-"))
    feed_port, smtp_port, http_port = free_port(), free_port(), free_port()
    server = ThreadingHTTPServer(("127.0.0.1", feed_port), FeedHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sink = Sink()
    smtp = Controller(sink, hostname="127.0.0.1", port=smtp_port)
    smtp.start()

    config = write_config(root, feed_port, smtp_port, http_port, args.feeds)
    add_subscribers(root, args.subscribers)
    digest = Path(sys.executable).with_name("digest")
    log_path = root / "daemon.log"
    samples_path = root / "rss.csv"
    env = {**os.environ, "DIGEST_SECRET": "soak-secret-" + "x" * 32}
    with log_path.open("w", encoding="utf-8") as log_file:
        daemon = subprocess.Popen(
            [str(digest), "--log-format", "json", "--config", str(config), "run"],
            cwd=root,
            stderr=log_file,
            stdout=subprocess.DEVNULL,
            env=env,
        )
        started = time.monotonic()
        end = started + args.minutes * 60
        samples: list[tuple[float, float, float]] = []
        first_fetch_rss: float | None = None
        print(
            f"soak: {args.feeds} feeds, {args.subscribers} subscribers, "
            f"{args.minutes:g} min; work dir {root}",
            file=sys.stderr,
        )
        while time.monotonic() < end and daemon.poll() is None:
            own, children = rss_mib(daemon.pid)
            elapsed = time.monotonic() - started
            samples.append((elapsed, own, children))
            with samples_path.open("a", encoding="utf-8") as fh:
                fh.write(f"{elapsed:.0f},{own:.1f},{children:.1f}\n")
            if first_fetch_rss is None and '"fetch done' in log_path.read_text(encoding="utf-8"):
                first_fetch_rss = own
                print(f"  first fetch done at {elapsed:.0f}s: RSS {own:.1f} MiB", file=sys.stderr)
            time.sleep(min(args.sample, max(end - time.monotonic(), 0.1)))
        final_own, final_children = rss_mib(daemon.pid) if daemon.poll() is None else (0.0, 0.0)
        alive = daemon.poll() is None
        daemon.send_signal(signal.SIGTERM)
        stop_started = time.monotonic()
        code = daemon.wait(60)
        stop_seconds = time.monotonic() - stop_started
    smtp.stop()
    server.shutdown()

    records = []
    for line in log_path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            records.append({"level": "raw", "message": line})
    errors = [r for r in records if r.get("level") in ("error", "critical", "raw")]
    fetches = [r for r in records if r.get("message", "").startswith("fetch done")]
    sends = [r for r in records if r.get("message", "").startswith("send done")]
    summary = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.python_version()} on {os.cpu_count()} cores",
        "minutes": round((time.monotonic() - started) / 60, 1),
        "feeds": args.feeds,
        "subscribers": args.subscribers,
        "rss_start_mib": round(first_fetch_rss or 0, 1),
        "rss_end_mib": round(final_own, 1),
        "rss_peak_mib": round(max(s[1] for s in samples), 1) if samples else None,
        "rss_children_end_mib": round(final_children, 1),
        # The trend matters more than two points: RSS at each 5-minute mark.
        "rss_every_5min_mib": [
            round(own, 1)
            for i, (t, own, _) in enumerate(samples)
            if i == 0 or int(t // 300) > int(samples[i - 1][0] // 300)
        ][1:],
        "rss_change_pct": (
            round(100 * (final_own - first_fetch_rss) / first_fetch_rss, 1)
            if first_fetch_rss
            else None
        ),
        "fetch_runs": len(fetches),
        "feeds_failed": sum(int(r.get("feeds_failed") or 0) for r in fetches),
        "items_new": sum(int(r.get("items_new") or 0) for r in fetches),
        "send_runs": len(sends),
        "issues_sent": sum(1 for r in sends if r.get("sent")),
        "messages_sent": sum(int(r.get("sent") or 0) for r in sends),
        "messages_received": sink.messages,
        "messages_failed": sum(int(r.get("failed") or 0) for r in sends),
        "error_lines": len(errors),
        "alive_at_end": alive,
        "exit_code": code,
        "stop_seconds": round(stop_seconds, 2),
        "feed_requests": FeedHandler.requests,
        "log": str(log_path),
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        for key, value in summary.items():
            print(f"{key:>22}: {value}")
        for r in errors[:10]:
            print(f"  error: {r.get('message')}")
    bad = errors or not alive or code != 0 or summary["feeds_failed"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
