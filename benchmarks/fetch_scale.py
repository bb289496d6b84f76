"""Benchmark: fetch cycles at scale: thousands of feeds on 500 loopback sites, 100 ms latency.

A farm process serves the feeds on 127.0.0.1 ... 127.0.0.250, two ports each (500 sites; all
of 127.0.0.0/8 is this machine), ETag and 304 like a real site. For each size of the curve a
fresh child process runs ``collect`` twice on a new database with ``[fetch] concurrency = 500``
and the default ``per_host``: a first cycle (every body new) and a no-change cycle (all 304).
Reported per cycle: wall, CPU (the process's own and its parse workers'), a CPU breakdown
(network: the fetch thread; parse: the pool's workers; store and topics: the store thread),
peak RSS; process start-up (imports, config, schema) separately; and feedparser's own CPU for
the same bodies (a sample, scaled) as the yardstick of the first cycle.
Run: ``.venv/bin/python benchmarks/fetch_scale.py [--feeds 500 1000 2000 5000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import json
import multiprocessing
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from multiprocessing.synchronize import Event as EventType
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fetch import TOPIC_LINES, feed_answer, make_feed, read_request

ADDRESSES = [f"127.0.0.{n}" for n in range(1, 251)]


def site(index: int, ports: list[int]) -> tuple[str, int]:
    """Feed ``index``'s site: one of 250 addresses x len(ports) ports."""
    k = index % (len(ADDRESSES) * len(ports))
    return ADDRESSES[k % len(ADDRESSES)], ports[k // len(ADDRESSES)]


def raise_nofile() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def serve(ports: list[int], count: int, latency: float, ready: EventType) -> None:
    raise_nofile()
    bodies = [make_feed(i) for i in range(count)]
    etags = [f'"{hashlib.sha1(b).hexdigest()[:16]}"' for b in bodies]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                path, headers = await read_request(reader)
                index = int(path.rsplit("/", 1)[-1].removesuffix(".xml"))
                await asyncio.sleep(latency)
                writer.write(feed_answer(bodies[index], etags[index], headers.get("if-none-match")))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        servers = [await asyncio.start_server(handle, ADDRESSES, p, backlog=4096) for p in ports]
        ready.set()
        await asyncio.gather(*(s.serve_forever() for s in servers))

    asyncio.run(main())


def free_ports(count: int) -> list[int]:
    import socket

    ports: list[int] = []
    while len(ports) < count:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        try:
            for address in ADDRESSES:
                with socket.socket() as probe:
                    probe.bind((address, port))
        except OSError:
            continue
        if port not in ports:
            ports.append(port)
    return ports


def write_config(folder: Path, urls: list[str], concurrency: int) -> Path:
    lines = [
        "[digest]",
        'title = "Scale benchmark"',
        "",
        "[storage]",
        f'url = "sqlite:///{folder / "scale.db"}"',
        "",
        "[fetch]",
        "allow_private = true",
        f"concurrency = {concurrency}",
        "",
        *TOPIC_LINES,
    ]
    for i, url in enumerate(urls):
        lines += ["[[feeds]]", f'url = "{url}"', f'name = "Feed {i}"', ""]
    path = folder / "scale.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- child


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def child(config: Path, sample: int, feeds: int) -> None:
    """One process: start-up, a first cycle, a no-change cycle, feedparser's yardstick."""
    raise_nofile()
    w0, c0 = time.perf_counter(), time.process_time()
    from digest.config import load as load_settings
    from digest.pipeline import collect as collect_mod
    from digest.store import open_store

    settings = load_settings(config)
    store = open_store(settings.storage.url)
    startup = {"wall": time.perf_counter() - w0, "cpu": time.process_time() - c0}

    spent: dict[str, float] = {}
    lock = threading.Lock()

    def add(key: str, seconds: float) -> None:
        with lock:
            spent[key] = spent.get(key, 0.0) + seconds

    def timed(key: str, fn: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                add(key, time.thread_time() - t)

        return wrapper

    collect_mod.fetch_all_sync = timed("network", collect_mod.fetch_all_sync)  # type: ignore[assignment]
    collect_mod.make_decider = timed("topics", collect_mod.make_decider)  # type: ignore[assignment]
    store_as_ready = collect_mod._Run._store_as_ready
    collect_mod._Run._store_as_ready = timed("store", store_as_ready)  # type: ignore[method-assign]
    collect_mod.decide_all = timed("match", collect_mod.decide_all)  # type: ignore[assignment]

    cycles = []
    for label in ("first", "no change"):
        spent.clear()
        w, c, k = time.perf_counter(), time.process_time(), children_cpu()
        counts = collect_mod.collect(settings, store)
        wall = time.perf_counter() - w
        cpu, parse = time.process_time() - c, children_cpu() - k
        store_cpu = spent.get("store", 0.0) - spent.get("match", 0.0)
        topics = spent.get("topics", 0.0) + spent.get("match", 0.0)
        network = spent.get("network", 0.0)
        cycles.append(
            {
                "cycle": label,
                "wall": wall,
                "cpu": cpu,
                "parse_workers_cpu": parse,
                "total_cpu": cpu + parse,
                "network": network,
                "store": store_cpu,
                "topics": topics,
                "other": cpu - network - spent.get("store", 0.0) - spent.get("topics", 0.0),
                "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "worker_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
                "ok": counts.feeds_ok,
                "not_modified": counts.feeds_not_modified,
                "failed": counts.feeds_failed,
                "items": counts.items_new,
            }
        )
    # feedparser alone on the same bodies: every ``step``-th feed, scaled to all of them.
    import feedparser

    step = max(1, feeds // sample)
    picked = list(range(0, feeds, step))
    bodies = [make_feed(i) for i in picked]
    c = time.process_time()
    for body in bodies:
        feedparser.parse(io.BytesIO(body))
    yardstick = (time.process_time() - c) * feeds / len(picked)
    print(json.dumps({"startup": startup, "cycles": cycles, "feedparser_cpu": yardstick}))


# --------------------------------------------------------------------------- parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--feeds", type=int, nargs="+", default=[500, 1000, 2000, 5000])
    ap.add_argument("--latency", type=float, default=0.1)
    ap.add_argument("--concurrency", type=int, default=500)
    ap.add_argument("--ports", type=int, default=2, help="ports per address (sites = 250 x ports)")
    ap.add_argument("--sample", type=int, default=500, help="feeds timed with feedparser alone")
    ap.add_argument(
        "--quick", action="store_true", help="small sizes: a check that it runs (make bench)"
    )
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--child-feeds", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.quick:  # small sizes; options given explicitly still win
        ap.set_defaults(feeds=[200], latency=0.02, sample=40)
        args = ap.parse_args()
    if args.child:
        child(args.child, args.sample, args.child_feeds)
        return
    raise_nofile()
    most = max(args.feeds)
    ports = free_ports(args.ports)
    ctx = multiprocessing.get_context("fork")
    ready = ctx.Event()
    farm = ctx.Process(target=serve, args=(ports, most, args.latency, ready), daemon=True)
    farm.start()
    if not ready.wait(300):
        sys.exit("farm did not start")
    print(
        f"# {len(ADDRESSES) * len(ports)} sites, {args.latency * 1000:.0f} ms latency, "
        f"concurrency {args.concurrency}, default per_host; {os.cpu_count()} cores; "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    print(
        "| feeds | cycle | wall s | CPU s (process + parse workers) | network | parse | store | "
        "topics | peak RSS MB (main / worker) | outcome |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    try:
        for n in args.feeds:
            urls = []
            for i in range(n):
                host, port = site(i, ports)
                urls.append(f"http://{host}:{port}/feeds/{i}.xml")
            with tempfile.TemporaryDirectory(prefix="digest-scale-") as tmp:
                config = write_config(Path(tmp), urls, args.concurrency)
                done = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--child",
                        str(config),
                        "--child-feeds",
                        str(n),
                        "--sample",
                        str(min(args.sample, n)),
                    ],
                    capture_output=True,
                    text=True,
                    check=False,
                )
            if done.returncode != 0:
                print(done.stderr[-3000:], file=sys.stderr)
                continue
            report = json.loads(done.stdout.strip().splitlines()[-1])
            for c in report["cycles"]:
                print(
                    f"| {n} | {c['cycle']} | {c['wall']:.2f} | {c['cpu']:.2f} + "
                    f"{c['parse_workers_cpu']:.2f} = {c['total_cpu']:.2f} | {c['network']:.2f} | "
                    f"{c['parse_workers_cpu']:.2f} | {c['store']:.2f} | {c['topics']:.2f} | "
                    f"{c['rss_mb']:.0f} / {c['worker_rss_mb']:.0f} | {c['ok']} ok, "
                    f"{c['not_modified']} not modified, {c['failed']} failed, "
                    f"{c['items']} items |",
                    flush=True,
                )
            first = report["cycles"][0]
            print(
                f"# {n} feeds: start-up {report['startup']['wall']:.2f} s wall "
                f"{report['startup']['cpu']:.2f} s CPU; feedparser alone on the same bodies "
                f"{report['feedparser_cpu']:.1f} s CPU; first cycle / feedparser = "
                f"{first['total_cpu'] / report['feedparser_cpu']:.2f}x; load average "
                f"{os.getloadavg()[0]:.2f}",
                flush=True,
            )
    finally:
        farm.terminate()
        farm.join(5)


if __name__ == "__main__":
    main()
