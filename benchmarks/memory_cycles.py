"""Memory per run, fast: the daemon's fetch and send jobs back to back, in this process.

Same world as ``soak.py`` (local feeds gaining an item per cycle, an aiosmtpd sink, a temp
SQLite database, subscribers) but no waiting a minute between runs. Prints the RSS after each
cycle, the Python heap tracemalloc sees and the rest (native: malloc arenas, SQLite caches), then
the top tracemalloc differences between an early and the last cycle.
Run: ``.venv/bin/python benchmarks/memory_cycles.py [--cycles 40] [--send-every 1] [--trace]``.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
import tempfile
import threading
import time
import tracemalloc
from collections import Counter
from http.server import ThreadingHTTPServer
from pathlib import Path

import psutil
from aiosmtpd.controller import Controller

sys.path.insert(0, str(Path(__file__).resolve().parent))
import soak


class CycleFeeds(soak.FeedHandler):
    """The soak's feeds, but their clock is the cycle number, not the wall clock."""

    cycle = 0

    def do_GET(self) -> None:
        try:
            index = int(self.path.strip("/").removesuffix(".xml").split("/")[-1])
        except ValueError:
            self.send_error(404)
            return
        minute = 30_000_000 // 60 + CycleFeeds.cycle
        etag = f'"{index}-{minute}"'
        if self.headers.get("If-None-Match") == etag:
            self.send_response(304)
            self.send_header("ETag", etag)
            self.end_headers()
            return
        body = soak.feed_body(index, minute)
        self.send_response(200)
        self.send_header("Content-Type", "application/rss+xml")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", etag)
        self.end_headers()
        self.wfile.write(body)


def _type_counts() -> Counter[str]:
    return Counter(type(o).__qualname__ for o in gc.get_objects())


def mib(n: float) -> str:
    return f"{n / 2**20:7.1f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cycles", type=int, default=40)
    ap.add_argument("--feeds", type=int, default=200)
    ap.add_argument("--subscribers", type=int, default=50)
    ap.add_argument("--send-every", type=int, default=1, help="send every N fetches (0: never)")
    ap.add_argument("--trace", action="store_true", help="tracemalloc (slower; heap figures)")
    ap.add_argument("--early", type=int, default=5, help="cycle of the early tracemalloc snapshot")
    ap.add_argument("--trim", action="store_true", help="glibc malloc_trim(0) after each cycle")
    ap.add_argument(
        "--default-malloc", action="store_true", help="leave glibc's arenas uncapped (as before)"
    )
    ap.add_argument("--types", action="store_true", help="count live objects by type (cheap)")
    ap.add_argument("--thread", action="store_true", help="run the jobs in one worker thread")
    ap.add_argument(
        "--quick", action="store_true", help="small sizes: a check that it runs (make bench)"
    )
    args = ap.parse_args()
    if args.quick:  # small sizes; options given explicitly still win
        ap.set_defaults(cycles=6, feeds=30, subscribers=10, early=2)
        args = ap.parse_args()

    if not args.default_malloc:
        from digest.infra.memory import limit_malloc_arenas

        limit_malloc_arenas()  # as `digest run` does at start-up
    root = Path(tempfile.mkdtemp(prefix="digest-memcycles-"))
    os.chdir(root)
    os.environ.setdefault("DIGEST_SECRET", "cycles-secret-" + "x" * 32)
    feed_port, smtp_port = soak.free_port(), soak.free_port()
    server = ThreadingHTTPServer(("127.0.0.1", feed_port), CycleFeeds)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sink = soak.Sink()
    smtp = Controller(sink, hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    config_path = soak.write_config(root, feed_port, smtp_port, soak.free_port(), args.feeds)
    soak.add_subscribers(root, args.subscribers)

    logging.basicConfig(level=logging.WARNING)
    from digest import config
    from digest.pipeline.collect import collect
    from digest.pipeline.issue import send
    from digest.store import open_store

    settings = config.load(config_path)
    store = open_store(settings.storage.url)
    stop = threading.Event()
    proc = psutil.Process()
    if args.trace:
        # The parse workers fork from this process: tracing there would only slow them down.
        os.register_at_fork(after_in_child=tracemalloc.stop)
        tracemalloc.start(6)
    early: tracemalloc.Snapshot | None = None
    first_rss = 0
    print(f"cycle  RSS MiB  traced  native   fetch s  sent   (work dir {root})")

    def one_cycle(cycle: int) -> tuple[int, float]:
        CycleFeeds.cycle = cycle
        started = time.monotonic()
        counts = collect(config.load(config_path), store, stop=stop)
        took = time.monotonic() - started
        if counts.feeds_failed:
            print(f"  {counts.feeds_failed} feeds failed", file=sys.stderr)
        sent = 0
        if args.send_every and cycle % args.send_every == 0:
            sent = send(config.load(config_path), store, stop=stop).sent
        return sent, took

    early_types: Counter[str] = Counter()
    worker = None
    if args.thread:
        from concurrent.futures import ThreadPoolExecutor

        worker = ThreadPoolExecutor(1)
    for cycle in range(1, args.cycles + 1):
        if worker is not None:
            sent, took = worker.submit(one_cycle, cycle).result()
        else:
            sent, took = one_cycle(cycle)
        gc.collect()
        if args.trim:
            import ctypes

            ctypes.CDLL("libc.so.6").malloc_trim(0)
        rss = proc.memory_info().rss
        traced = tracemalloc.get_traced_memory()[0] if args.trace else 0
        if cycle == 1:
            first_rss = rss
        print(
            f"{cycle:5d} {mib(rss)}  {mib(traced)} {mib(rss - traced)}   {took:6.2f}  {sent:4d}",
            flush=True,
        )
        if args.trace and cycle == args.early:
            early = tracemalloc.take_snapshot()
        if args.types and cycle == args.early:
            early_types = _type_counts()
    print(f"RSS first -> last cycle: {mib(first_rss)} -> {mib(rss)} MiB")
    if args.trace and early is not None:
        late = tracemalloc.take_snapshot()
        filters = [tracemalloc.Filter(False, tracemalloc.__file__)]
        diff = late.filter_traces(filters).compare_to(early.filter_traces(filters), "traceback")
        print(f"\ntracemalloc: top growth from cycle {args.early} to {args.cycles}")
        for stat in diff[:15]:
            print(f"{stat.size_diff / 1024:9.1f} KiB  {stat.count_diff:+7d} blocks")
            for line in stat.traceback.format()[-8:]:
                print("      " + line)
    if args.types:
        grown = _type_counts()
        grown.subtract(early_types)
        print(f"\nlive objects: top growth from cycle {args.early} to {args.cycles}")
        for name, n in grown.most_common(20):
            print(f"{n:+9d}  {name}")
    store.close()
    smtp.stop()
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
