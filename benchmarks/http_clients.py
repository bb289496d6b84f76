"""Benchmark: HTTP clients on the feed workload, wall and CPU measured in one run.

A local farm (a separate process, loopback addresses 127.0.0.1... as sites, 100 ms latency)
serves feeds the way the world does: most requests are conditional and answered 304, changed
feeds come gzip- or brotli-compressed, some feeds moved (301 then 200), a few are over the size
cap. Each client fetches the same URL list with the same per-host and global limits, timeout and
size cap; the CPU figure is this process's own (``time.process_time``: the farm is elsewhere).
Run: ``.venv/bin/python benchmarks/http_clients.py [--feeds 1000] [--inflight 100 1000]``.
Clients not installed (curl_cffi, niquests: ``uv pip install curl_cffi niquests``) are skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import hashlib
import multiprocessing
import os
import platform
import resource
import statistics
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from multiprocessing.synchronize import Event as EventType
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import brotli

from fetch import free_port, host_of, make_feed, read_request

CAP = 1_000_000  # bytes: the oversized feeds (2 MB) must be refused
TIMEOUT = 20.0


def kind_of(index: int) -> str:
    """The farm's answer for feed ``index`` when the client sends its validator."""
    slot = index % 100
    if slot < 60:
        return "304"
    if slot < 85:
        return "gzip"
    if slot < 93:
        return "br"
    if slot < 99:
        return "moved"
    return "huge"


def serve(port: int, count: int, latency: float, hosts: int, ready: EventType) -> None:
    bodies = [make_feed(i % 50) for i in range(50)]
    gz = [gzip.compress(b, 6) for b in bodies]
    br = [brotli.compress(b, quality=5) for b in bodies]
    huge = gzip.compress(b"<rss>" + b"x" * 2_000_000 + b"</rss>")
    etag = [f'"{hashlib.sha1(b).hexdigest()[:16]}"' for b in bodies]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                path, headers = await read_request(reader)
                await asyncio.sleep(latency)
                moved = path.startswith("/new/")
                index = int(path.rsplit("/", 1)[-1].removesuffix(".xml"))
                kind = kind_of(index)
                tag = etag[index % 50]
                accept = headers.get("accept-encoding", "")
                if kind == "moved" and not moved:
                    out = (
                        f"HTTP/1.1 301 Moved Permanently\r\nLocation: /new/{index}.xml\r\n"
                        "Content-Length: 0\r\n\r\n"
                    ).encode()
                elif kind == "304" and headers.get("if-none-match") == tag:
                    out = f"HTTP/1.1 304 Not Modified\r\nETag: {tag}\r\n\r\n".encode()
                else:
                    if kind == "huge":
                        body, enc = huge, "gzip"
                    elif kind == "br" and "br" in accept:
                        body, enc = br[index % 50], "br"
                    elif "gzip" in accept:
                        body, enc = gz[index % 50], "gzip"
                    else:
                        body, enc = bodies[index % 50], ""
                    extra = f"Content-Encoding: {enc}\r\n" if enc else ""
                    out = (
                        "HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\n"
                        f"ETag: {tag}\r\n{extra}Content-Length: {len(body)}\r\n\r\n"
                    ).encode() + body
                writer.write(out)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(
            handle, [host_of(i, hosts) for i in range(hosts)], port, backlog=4096
        )
        ready.set()
        async with server:
            await server.serve_forever()

    asyncio.run(main())


# --------------------------------------------------------------------------- clients

Fetcher = Callable[[str, dict[str, str]], Awaitable[str]]


class TooLarge(Exception):
    pass


async def run_httpx(
    urls: list[tuple[str, dict[str, str]]], inflight: int, per_host: int
) -> Counter[str]:
    import httpx

    async with httpx.AsyncClient(
        limits=httpx.Limits(max_connections=inflight, max_keepalive_connections=inflight),
        timeout=TIMEOUT,
        follow_redirects=True,
        max_redirects=5,
    ) as client:

        async def one(url: str, headers: dict[str, str]) -> str:
            async with client.stream("GET", url, headers=headers) as r:
                if r.status_code == 304:
                    return "304"
                size = 0
                async for chunk in r.aiter_bytes():
                    size += len(chunk)
                    if size > CAP:
                        raise TooLarge
                return f"{r.status_code}{'+moved' if r.history else ''}"

        return await drive(one, urls, inflight, per_host)


async def run_aiohttp(
    urls: list[tuple[str, dict[str, str]]], inflight: int, per_host: int
) -> Counter[str]:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=inflight, limit_per_host=per_host, ttl_dns_cache=300)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=TIMEOUT)
    ) as session:

        async def one(url: str, headers: dict[str, str]) -> str:
            async with session.get(url, headers=headers, max_redirects=5) as r:
                if r.status == 304:
                    return "304"
                size = 0
                async for chunk in r.content.iter_chunked(65536):
                    size += len(chunk)
                    if size > CAP:
                        raise TooLarge
                return f"{r.status}{'+moved' if r.history else ''}"

        return await drive(one, urls, inflight, per_host)


async def run_curl_cffi(
    urls: list[tuple[str, dict[str, str]]], inflight: int, per_host: int
) -> Counter[str]:
    from curl_cffi.requests import AsyncSession

    async with AsyncSession(max_clients=inflight, timeout=TIMEOUT) as session:

        async def one(url: str, headers: dict[str, str]) -> str:
            r = await session.get(
                url,
                headers={**headers, "Accept-Encoding": "gzip, br"},
                allow_redirects=True,
                max_redirects=5,
                stream=True,
            )
            try:
                if r.status_code == 304:
                    return "304"
                size = 0
                async for chunk in r.aiter_content():
                    size += len(chunk)
                    if size > CAP:
                        raise TooLarge
                moved = r.redirect_count > 0
                return f"{r.status_code}{'+moved' if moved else ''}"
            finally:
                await r.aclose()

        return await drive(one, urls, inflight, per_host)


async def run_niquests(
    urls: list[tuple[str, dict[str, str]]], inflight: int, per_host: int
) -> Counter[str]:
    import niquests

    async with niquests.AsyncSession(pool_connections=100, pool_maxsize=per_host) as session:

        async def one(url: str, headers: dict[str, str]) -> str:
            r = await session.get(url, headers=headers, timeout=TIMEOUT, stream=True)
            if r.status_code == 304:
                return "304"
            size = 0
            async for chunk in await r.iter_content(65536):
                size += len(chunk)
                if size > CAP:
                    raise TooLarge
            return f"{r.status_code}{'+moved' if r.history else ''}"

        return await drive(one, urls, inflight, per_host)


async def drive(
    one: Fetcher, urls: list[tuple[str, dict[str, str]]], inflight: int, per_host: int
) -> Counter[str]:
    """Every URL at most ``inflight`` at once and ``per_host`` per site; outcomes counted."""
    gate = asyncio.Semaphore(inflight)
    hosts: dict[str, asyncio.Semaphore] = {}

    async def task(url: str, headers: dict[str, str]) -> str:
        host = hosts.setdefault(url.split("/")[2], asyncio.Semaphore(per_host))
        async with host, gate:
            try:
                return await one(url, headers)
            except TooLarge:
                return "too-large"
            except Exception as exc:  # counted, like a failed feed
                return f"error:{type(exc).__name__}"

    return Counter(await asyncio.gather(*(task(u, h) for u, h in urls)))


CLIENTS: dict[str, Callable[..., Awaitable[Counter[str]]]] = {
    "httpx": run_httpx,
    "aiohttp": run_aiohttp,
    "curl_cffi": run_curl_cffi,
    "niquests": run_niquests,
}


def available(name: str) -> bool:
    try:
        __import__(name)
    except ImportError:
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--inflight", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--clients", nargs="+", default=list(CLIENTS))
    parser.add_argument(
        "--quick", action="store_true", help="small sizes: a check that it runs (make bench)"
    )
    args = parser.parse_args()
    if args.quick:  # small sizes; options given explicitly still win
        parser.set_defaults(feeds=100, inflight=[50], latency=0.02, repeat=1)
        args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    port = free_port(args.hosts)
    ready = multiprocessing.Event()
    farm = multiprocessing.Process(
        target=serve, args=(port, args.feeds, args.latency, args.hosts, ready), daemon=True
    )
    farm.start()
    ready.wait(30)
    tags = {i: f'"{hashlib.sha1(make_feed(i)).hexdigest()[:16]}"' for i in range(50)}
    urls = [
        (
            f"http://{host_of(i, args.hosts)}:{port}/feeds/{i}.xml",
            {"If-None-Match": tags[i % 50], "User-Agent": "bench"},
        )
        for i in range(args.feeds)
    ]
    names = [n for n in args.clients if available(n)]
    print(
        f"# {args.feeds} feeds on {args.hosts} hosts, {args.latency * 1000:.0f} ms latency; "
        f"python {platform.python_version()}, {os.cpu_count()} cores, "
        f"load {os.getloadavg()[0]:.2f}; skipped: {sorted(set(args.clients) - set(names))}"
    )
    print("| in flight | client | wall s (median) | CPU s (median) | outcomes |")
    print("|---|---|---|---|---|")
    for inflight in args.inflight:
        per_host = max(1, -(-inflight // args.hosts))
        for name in names:
            walls: list[float] = []
            cpus: list[float] = []
            outcome: Counter[str] = Counter()
            for _ in range(args.repeat):
                w0, c0 = time.perf_counter(), time.process_time()
                outcome = asyncio.run(CLIENTS[name](urls, inflight, per_host))
                walls.append(time.perf_counter() - w0)
                cpus.append(time.process_time() - c0)
            shown = ", ".join(f"{k} {v}" for k, v in sorted(outcome.items()))
            print(
                f"| {inflight} | {name} | {statistics.median(walls):.2f} | "
                f"{statistics.median(cpus):.2f} | {shown} |",
                flush=True,
            )
    print(f"# load average after: {os.getloadavg()[0]:.2f}")
    farm.terminate()


if __name__ == "__main__":
    main()
