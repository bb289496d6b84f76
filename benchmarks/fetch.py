"""Benchmark: fetch and parse 200 generated feeds from a local server with 100 ms latency.

Times ``digest --config <tmp> fetch`` twice (a first run, then one where every feed answers
304), with a warm bytecode cache and then as the environment is (no warm-up), or with
``--layer`` the fetch and parse layer alone (``fetch_all`` + ``ParsePool``).
With ``--compare``: ``digest run --once`` (fetch, issue, send to a local SMTP sink) beside
rss2email in digest mode on the same farm and sink, first run and no-change run; rss2email is
run from the benchmark's own environment (installed on first use under ~/.cache/digest-bench,
or ``--rss2email PYTHON`` of an environment that has it). Farm shapes: ``--hosts 1 --per-host
100`` (one site) or ``--hosts 50`` (default per_host).
Run: ``.venv/bin/python benchmarks/fetch.py [--feeds 200] [--hosts 50] [--latency 0.1] [--layer]``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import multiprocessing
import os
import platform
import random
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from multiprocessing.synchronize import Event as EventType
from pathlib import Path
from xml.sax.saxutils import escape

REPO = Path(__file__).resolve().parent.parent

WORDS = [
    "cloud",
    "souverain",
    "données",
    "personnelles",
    "hébergement",
    "sécurité",
    "réseau",
    "règlement",
    "sovereign",
    "data",
    "protection",
    "hosting",
    "regulator",
    "privacy",
    "breach",
    "fine",
    "court",
    "ruling",
    "infrastructure",
    "provider",
    "contract",
    "public",
    "sector",
    "health",
    "records",
    "encryption",
    "ministère",
    "commission",
    "autorité",
    "contrôle",
    "conformité",
    "transfert",
    "juridiction",
    "startup",
    "investment",
    "quarter",
    "growth",
    "report",
    "analysis",
    "energy",
    "weather",
    "election",
]


# --------------------------------------------------------------------------- feeds


#: The two shipped topics, in short, for the benchmark configs.
TOPIC_LINES = [
    "[topics.sovereign_cloud]",
    'title = "Sovereign cloud"',
    'include = ["cloud souverain", "sovereign cloud", "SecNumCloud"]',
    "",
    "[topics.data_protection]",
    'title = "Data protection"',
    'include = ["données personnelles", "data protection", "RGPD", "GDPR"]',
    "",
]


async def read_request(reader: asyncio.StreamReader) -> tuple[str, dict[str, str]]:
    """One HTTP/1.1 request head from the farm's socket: its path and lower-cased headers."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {
        k.strip().lower(): v.strip()
        for k, _, v in (line.partition(":") for line in lines[1:] if line)
    }
    return lines[0].split(" ")[1], headers


def feed_answer(body: bytes, etag: str, sent_etag: str | None) -> bytes:
    """A feed's HTTP/1.1 answer: 304 when the client sent its current ETag, else the body."""
    if sent_etag == etag:
        return f"HTTP/1.1 304 Not Modified\r\nETag: {etag}\r\n\r\n".encode()
    head = (
        "HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml; charset=utf-8"
        f"\r\nETag: {etag}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def make_feed(index: int, items: int = 20, size: int = 25_000) -> bytes:
    """One RSS 2.0 document of about ``size`` bytes with ``items`` distinct items."""
    rnd = random.Random(index)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    per_item = size // items
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>',
        f"<title>Bench feed {index}</title><link>https://feed{index}.example/</link>",
        "<language>fr</language>",
    ]
    for n in range(items):
        title = " ".join(rnd.choice(WORDS) for _ in range(8)).capitalize()
        paragraphs: list[str] = []
        length = 0
        while length < per_item - 400:
            sentence = " ".join(rnd.choice(WORDS) for _ in range(18)).capitalize() + "."
            paragraphs.append(f"<p>{sentence} <a href='/a/{index}/{n}'>lien</a></p>")
            length += len(sentence) + 40
        when = format_datetime(start + timedelta(hours=index + n * 7))
        parts.append(
            f"<item><title>{escape(title)}</title>"
            f"<link>https://feed{index}.example/{n}/{rnd.getrandbits(32):x}</link>"
            f"<guid>feed{index}-item{n}</guid><pubDate>{when}</pubDate>"
            f"<description>{escape(''.join(paragraphs))}</description></item>"
        )
    parts.append("</channel></rss>")
    return "".join(parts).encode()


# --------------------------------------------------------------------------- server


def host_of(index: int, hosts: int) -> str:
    """Feed ``index``'s site: one of ``hosts`` loopback addresses (127.0.0.1, 127.0.0.2, ...)."""
    return f"127.0.0.{index % hosts + 1}"


def serve(port: int, feeds: list[bytes], latency: float, hosts: int, ready: EventType) -> None:
    """An asyncio HTTP/1.1 server (keep-alive, ETag/304) answering every request after a delay.

    It listens on ``hosts`` loopback addresses, so the client sees that many sites (Linux routes
    all of 127.0.0.0/8 to the loopback interface).
    """
    etags = [f'"{hashlib.sha1(body).hexdigest()[:16]}"' for body in feeds]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                path, headers = await read_request(reader)
                await asyncio.sleep(latency)
                try:
                    index = int(path.strip("/").split("/")[-1].removesuffix(".xml"))
                    body, etag = feeds[index], etags[index]
                except (ValueError, IndexError):
                    writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                    await writer.drain()
                    continue
                writer.write(feed_answer(body, etag, headers.get("if-none-match")))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        addresses = [host_of(i, hosts) for i in range(hosts)]
        server = await asyncio.start_server(handle, addresses, port, backlog=1024)
        ready.set()
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def free_port(hosts: int) -> int:
    """A port free on every address the server will listen on."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        try:
            for i in range(hosts):
                with socket.socket() as probe:
                    probe.bind((host_of(i, hosts), port))
        except OSError:
            continue
        return port
    sys.exit("no port free on every loopback address")


# --------------------------------------------------------------------------- runs


def write_config(
    folder: Path,
    urls: list[str],
    concurrency: int | None = None,
    *,
    per_host: int | None = None,
    smtp_port: int | None = None,
    cache_dir: Path | None = None,
) -> Path:
    """A config for ``urls``; ``[fetch] concurrency`` and ``per_host`` only when given (else as
    shipped); with ``smtp_port`` issues go to that local SMTP sink. The warm-up and the timed
    runs share ``cache_dir`` (the topics' word forms), as on a deployment where `digest check`
    or any earlier run compiled the topics once."""
    lines = [
        "[digest]",
        'title = "Fetch benchmark"',
        # The generated items are dated from 2026-11-01 on: all of them are in the window.
        "window_days = 365",
        "",
        "[storage]",
        f'url = "sqlite:///{folder / "bench.db"}"',
        *([f'cache_dir = "{cache_dir}"'] if cache_dir else []),
        "",
        # The benchmark's feeds are on loopback addresses: allowed, as for an intranet digest.
        "[fetch]",
        "allow_private = true",
        *([f"concurrency = {concurrency}"] if concurrency else []),
        *([f"per_host = {per_host}"] if per_host else []),
        "",
        *(
            [
                "[delivery]",
                'mode = "smtp"',
                'from = "Bench <bench@example.org>"',
                "",
                "[smtp]",
                'host = "127.0.0.1"',
                f"port = {smtp_port}",
                'security = "none"',
                "",
            ]
            if smtp_port
            else []
        ),
        *TOPIC_LINES,
    ]
    for i, url in enumerate(urls):
        lines += ["[[feeds]]", f'url = "{url}"', f'name = "Bench feed {i}"', ""]
    path = folder / "bench.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def digest_command() -> list[str]:
    exe = Path(sys.executable).with_name("digest")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "digest"]


def cli_has_fetch(env: dict[str, str]) -> bool:
    try:
        done = subprocess.run(
            [*digest_command(), "fetch", "--help"],
            capture_output=True,
            timeout=120,
            check=False,
            env=env,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def cli_env(folder: Path, *, write: bool = True) -> dict[str, str]:
    """The CLI's environment with a bytecode cache in ``folder`` (``write=False``: an empty
    cache never filled, so every module, the standard library's too, is compiled each start).

    With PYTHONDONTWRITEBYTECODE set (as in some sandboxes) and no .pyc installed, every
    ``digest`` start compiles ~650 modules from source, about 1.5 s of CPU that an installed
    package (pip, ``uv sync --compile-bytecode`` as ``make install`` does) never pays; the
    editable install of ``src/digest`` itself is never compiled ahead.
    """
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if not write:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONPYCACHEPREFIX"] = str(folder / "pycache")
    return env


def cpu_seconds() -> float:
    """CPU used so far by this process and its finished children (the parse pool, the CLI):
    unlike wall time, it does not depend on what else the machine is running."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def time_cli(config: Path, label: str, env: dict[str, str]) -> float:
    """One ``digest fetch`` subprocess: wall and CPU (its parse workers included)."""
    started = time.perf_counter()
    cpu = cpu_seconds()
    done = subprocess.run(
        [*digest_command(), "--config", str(config), "fetch"],
        capture_output=True,
        text=True,
        check=False,
        cwd=config.parent,
        env=env,
    )
    wall = time.perf_counter() - started
    cpu = cpu_seconds() - cpu
    summary = (done.stdout.strip().splitlines() or [""])[-1]
    print(f"{label:<28} {wall:6.2f} s wall {cpu:6.2f} s CPU   exit {done.returncode}   {summary}")
    if done.returncode != 0:
        print(done.stderr.strip()[-2000:], file=sys.stderr)
    return wall


def time_layer(urls: list[str], concurrency: int | None, overlap: bool) -> tuple[float, float]:
    from digest.config import FetchSection
    from digest.models import FetchRequest, FetchResult, FetchStatus
    from digest.reader.fetch import FetchOptions, fetch_all_sync
    from digest.reader.parse import ParseJob, ParsePool, parse_many

    def job(r: FetchResult) -> ParseJob:
        return ParseJob(r.content or b"", r.url, datetime.now(UTC), r.content_type)

    def ok(r: FetchResult) -> bool:
        return r.status is FetchStatus.OK and r.content is not None

    shipped = FetchSection()
    options = FetchOptions(
        concurrency=concurrency or shipped.concurrency, per_host=shipped.per_host
    )

    def run(requests: list[FetchRequest], label: str) -> tuple[float, list[str | None]]:
        started = time.perf_counter()
        cpu = cpu_seconds()
        if overlap:
            # Parse each body while the other feeds are still downloading.
            with ParsePool() as pool:
                results = fetch_all_sync(
                    requests,
                    options,
                    on_result=lambda r: pool.submit(job(r)) if ok(r) else None,
                )
                fetched = time.perf_counter() - started
                parsed = pool.results()
        else:
            results = fetch_all_sync(requests, options)
            fetched = time.perf_counter() - started
            parsed = parse_many([job(r) for r in results if ok(r)])
        wall = time.perf_counter() - started
        cpu = cpu_seconds() - cpu
        items = sum(len(p.items) for p in parsed if not isinstance(p, Exception))
        statuses = " ".join(f"{s.value}={sum(r.status is s for r in results)}" for s in FetchStatus)
        print(
            f"{label:<30} {wall:6.2f} s wall {cpu:6.2f} s CPU   (fetch done at {fetched:.2f} s)"
            f"   {statuses}   items {items}"
        )
        return wall, [r.etag for r in results]

    mode = "overlapped" if overlap else "sequential"
    first, etags = run(
        [FetchRequest(u, allow_private=True) for u in urls], f"layer {mode}: first run"
    )
    second, _ = run(
        [FetchRequest(u, etag=e, allow_private=True) for u, e in zip(urls, etags, strict=True)],
        f"layer {mode}: all 304",
    )
    return first, second


def start_sink(folder: Path) -> tuple[subprocess.Popen[str], int]:
    """benchmarks/smtp_sink.py in its own process, on a free port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    sink = subprocess.Popen(
        [sys.executable, str(REPO / "benchmarks" / "smtp_sink.py"), "--port", str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert sink.stdout is not None
    sink.stdout.readline()  # "ready"
    return sink, port


def timed(cmd: list[str], *, env: dict[str, str], cwd: Path) -> tuple[float, float, str]:
    """Wall and CPU (children included) of one command; its last line of output."""
    started, cpu = time.perf_counter(), cpu_seconds()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=cwd, env=env)
    wall, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    if done.returncode != 0:
        print(done.stderr.strip()[-2000:], file=sys.stderr)
    return wall, cpu, (done.stdout.strip().splitlines() or [""])[-1][:160]


def compare(urls: list[str], args: argparse.Namespace, folder: Path) -> None:
    """``digest run --once`` beside ``r2e run`` (digest mode), same farm, same SMTP sink."""
    sink, port = start_sink(folder)
    env = cli_env(folder)
    env["DIGEST_SECRET"] = "benchmark-secret-" + "x" * 24
    rows: dict[str, dict[str, tuple[float, float, str]]] = {"digest": {}, "rss2email": {}}
    try:
        warm = folder / "warmup"
        warm.mkdir()
        config = write_config(warm, urls[:3], smtp_port=port, cache_dir=folder / "cache")
        timed([*digest_command(), "--config", str(config), "run", "--once"], env=env, cwd=warm)
        runs = folder / "digest"
        runs.mkdir()
        config = write_config(
            runs,
            urls,
            args.concurrency,
            per_host=args.per_host,
            smtp_port=port,
            cache_dir=folder / "cache",
        )
        (runs / "people.csv").write_text("email,name\nreader@example.org,Reader\n")
        timed(
            [*digest_command(), "--config", str(config), "subscribers", "import", "people.csv"],
            env=env,
            cwd=runs,
        )
        command = [*digest_command(), "--config", str(config), "run", "--once"]
        rows["digest"]["first"] = timed(command, env=env, cwd=runs)
        rows["digest"]["again"] = timed(command, env=env, cwd=runs)
        r2e = find_rss2email(args.rss2email)
        if r2e is not None:
            rows["rss2email"] = time_r2e(r2e, urls, port, folder / "r2e")
        else:
            print("rss2email could not be installed: its column is skipped")
    finally:
        sink.terminate()
        sink.wait(10)
    print()
    print("| run | rss2email | digest | ratio |")
    print("|---|---|---|---|")
    for key, label in (("first", "first run (fetch, issue, send)"), ("again", "nothing changed")):
        d_wall, d_cpu, d_line = rows["digest"][key]
        if key in rows["rss2email"]:
            r_wall, r_cpu, _ = rows["rss2email"][key]
            print(
                f"| {label} | {r_wall:.2f} s ({r_cpu:.2f} s CPU) | {d_wall:.2f} s "
                f"({d_cpu:.2f} s CPU) | {r_wall / d_wall:.1f}x |"
            )
        else:
            print(f"| {label} | - | {d_wall:.2f} s ({d_cpu:.2f} s CPU) | - |")
        print(f"#   digest said: {d_line}")


#: Where the benchmark installs rss2email when the Python running it has none.
R2E_HOME = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "digest-bench"
R2E_VERSION = "3.14"


def find_rss2email(python: str | None) -> Path | None:
    """rss2email's ``r2e``: beside ``python`` when given; else beside the Python running the
    benchmark (``pip install rss2email`` there); else in the benchmark's own environment,
    created on first use under ``R2E_HOME`` from the package registry."""
    if python:
        given = Path(python).with_name("r2e")
        return given if given.exists() else None
    beside = Path(sys.executable).with_name("r2e")
    if beside.exists():
        return beside
    home = R2E_HOME / f"rss2email-{R2E_VERSION}"
    r2e = home / "bin" / "r2e"
    if not r2e.exists():
        print(f"installing rss2email {R2E_VERSION} into {home} (once)")
        try:
            subprocess.run([sys.executable, "-m", "venv", str(home)], check=True)
            pip = [str(home / "bin" / "python"), "-m", "pip", "install", "--quiet"]
            subprocess.run([*pip, f"rss2email=={R2E_VERSION}"], check=True)
        except (OSError, subprocess.CalledProcessError) as exc:
            print(f"rss2email not installed: {exc}", file=sys.stderr)
            return None
    return r2e if r2e.exists() else None


def time_r2e(
    r2e: Path, urls: list[str], smtp_port: int, folder: Path
) -> dict[str, tuple[float, float, str]]:
    """rss2email 3 in digest mode (one message per feed and run), its feeds from OPML."""
    import configparser

    folder.mkdir()
    cfg, data = folder / "r2e.cfg", folder / "r2e.json"
    env = dict(os.environ)
    base = [str(r2e), "-c", str(cfg), "-d", str(data)]
    subprocess.run([*base, "new", "reader@example.org"], check=True, capture_output=True)
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(cfg)
    parser["DEFAULT"].update(
        {
            "from": "bench@example.org",
            "email-protocol": "smtp",
            "smtp-server": "127.0.0.1",
            "smtp-port": str(smtp_port),
            "smtp-auth": "False",
            "digest": "True",
        }
    )
    with cfg.open("w") as fh:
        parser.write(fh)
    outlines = "".join(
        f'<outline type="rss" text="feed{i}" xmlUrl="{url}"/>' for i, url in enumerate(urls)
    )
    opml = folder / "feeds.opml"
    opml.write_text(f'<?xml version="1.0"?><opml version="2.0"><body>{outlines}</body></opml>')
    subprocess.run([*base, "opmlimport", str(opml)], check=True, capture_output=True)
    first = timed([*base, "run"], env=env, cwd=folder)
    again = timed([*base, "run"], env=env, cwd=folder)
    return {"first": first, "again": again}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--feeds", type=int, default=200)
    ap.add_argument("--items", type=int, default=20)
    ap.add_argument("--size", type=int, default=25_000, help="bytes per feed (about)")
    ap.add_argument("--latency", type=float, default=0.1, help="seconds per response")
    ap.add_argument(
        "--hosts", type=int, default=50, help="sites the feeds are spread over (loopback addresses)"
    )
    ap.add_argument(
        "--concurrency", type=int, default=None, help="connections at once (default: as shipped)"
    )
    ap.add_argument(
        "--per-host", type=int, default=None, help="[fetch] per_host (default: as shipped)"
    )
    ap.add_argument(
        "--compare",
        action="store_true",
        help="digest run --once beside rss2email (fetch, issue, send to a local SMTP sink)",
    )
    ap.add_argument(
        "--rss2email",
        default=None,
        help="python of an environment with rss2email installed (for --compare; default: "
        "the running Python's, else one the benchmark installs under ~/.cache/digest-bench)",
    )
    ap.add_argument(
        "--layer", action="store_true", help="time fetch_all + parsing instead of the CLI"
    )
    ap.add_argument(
        "--sequential",
        action="store_true",
        help="with --layer: parse_many after fetch_all, not a ParsePool fed as feeds arrive",
    )
    ap.add_argument(
        "--warm-only",
        action="store_true",
        help="skip the pair of runs in the environment as is (no warm-up)",
    )
    ap.add_argument(
        "--no-bytecode",
        action="store_true",
        help="add a pair of runs reading no .pyc at all (stdlib included): the worst start",
    )
    ap.add_argument(
        "--quick", action="store_true", help="small sizes: a check that it runs (make bench)"
    )
    args = ap.parse_args()
    if args.quick:  # small sizes; options given explicitly still win
        ap.set_defaults(feeds=40, hosts=10, latency=0.02, warm_only=True)
        args = ap.parse_args()

    feeds = [make_feed(i, args.items, args.size) for i in range(args.feeds)]
    avg = sum(map(len, feeds)) / len(feeds)
    print(
        f"{args.feeds} feeds x {args.items} items, {avg / 1000:.1f} KB each, "
        f"{args.latency * 1000:.0f} ms latency; {platform.platform()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    port = free_port(args.hosts)
    # fork: the child gets the generated feeds without pickling 5 MB (the script is POSIX-only).
    ctx = multiprocessing.get_context("fork")
    ready = ctx.Event()
    server = ctx.Process(
        target=serve, args=(port, feeds, args.latency, args.hosts, ready), daemon=True
    )
    server.start()
    if not ready.wait(10):
        sys.exit("benchmark server did not start")
    urls = [f"http://{host_of(i, args.hosts)}:{port}/feeds/{i}.xml" for i in range(args.feeds)]
    print(f"feeds spread over {args.hosts} site(s); load average {load_average()}")
    folder = Path(tempfile.mkdtemp(prefix="digest-bench-"))
    try:
        if args.compare:
            compare(urls, args, folder)
            print(f"load average {load_average()}")
            return
        if args.layer or not cli_has_fetch(dict(os.environ)):
            if not args.layer:
                print("`digest fetch` is not available: timing the layer instead")
            first, second = time_layer(urls, args.concurrency, overlap=not args.sequential)
            verdict(f"layer ({'sequential' if args.sequential else 'overlapped'})", first, second)
            return
        # The environment as it is first (no warm-up: what an operator's first command pays
        # with whatever bytecode is installed), then with a warm bytecode cache.
        setups = [("as is", dict(os.environ), False), ("warm", cli_env(folder), True)]
        if args.warm_only:
            setups.pop(0)
        if args.no_bytecode:
            setups.append(("no bytecode", cli_env(folder / "empty", write=False), False))
        for label, env, warm_up in setups:
            runs = folder / label.replace(" ", "-")
            runs.mkdir()
            if warm_up:
                # Untimed: fills the bytecode cache, including modules imported lazily.
                warm = runs / "warmup"
                warm.mkdir()
                warm_config = write_config(warm, urls[:3], cache_dir=runs / "cache")
                time_cli(warm_config, "warm-up (3 feeds, untimed)", env)
            config = write_config(runs, urls, args.concurrency, cache_dir=runs / "cache")
            first = time_cli(config, f"{label}: first run", env)
            second = time_cli(config, f"{label}: all 304", env)
            verdict(f"cli, {label}", first, second)
        print(f"load average {load_average()}")
    finally:
        server.terminate()
        server.join(5)
        shutil.rmtree(folder, ignore_errors=True)


def verdict(mode: str, first: float, second: float) -> None:
    ok = "ok" if first <= 4.0 and second <= 1.5 else "OVER TARGET"
    print(f"{mode}: first {first:.2f} s (target 4), second {second:.2f} s (target 1.5): {ok}")


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


if __name__ == "__main__":
    main()
