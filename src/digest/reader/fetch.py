"""Fetch many feeds concurrently (aiohttp, through the guarded client in ``httpclient``):
conditional GET, size cap, per-feed timeout.

A feed that fails is a ``FetchResult(status=FAILED)`` value, never an exception; ``file:`` URLs
and plain paths are read from disk so the offline demo needs no network.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import email.utils
import itertools
import logging
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

import aiohttp

from digest.errors import FetchError, FetchTimeout, HTTPStatusError, TooLargeError
from digest.httpclient import (
    ClientError,
    Refused,
    Response,
    checked_url_problem,
    guarded_session,
    translate_error,
)
from digest.models import FetchRequest, FetchResult, FetchStatus

__all__ = ["PER_HOST", "USER_AGENT", "fetch_all", "fetch_all_sync"]

log = logging.getLogger(__name__)

Session = aiohttp.ClientSession


def _version() -> str:
    try:
        return version("digest")
    except PackageNotFoundError:
        return "0"


PROJECT_URL = "https://github.com/digest-newsletter/digest"
USER_AGENT = f"digest/{_version()} (+{PROJECT_URL})"
ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml;q=0.9, "
    "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
)
MAX_REDIRECTS = 5
_PERMANENT = frozenset({301, 308})
_MAX_AGE = re.compile(r"(?:^|[,\s])max-age\s*=\s*\"?(\d+)", re.IGNORECASE)
_NO_CACHE = re.compile(r"(?:^|[,\s])(?:no-cache|no-store)\b", re.IGNORECASE)


#: Connections to one host at once: polite to a site that serves many of the configured feeds.
PER_HOST = 8
#: How often a batch looks at its ``stop`` callable: a daemon asked to stop leaves within this.
STOP_POLL = 0.1


def _host(url: str) -> str:
    """The site part of a URL (a semaphore's key): the text between "//" and the next "/"."""
    _scheme, sep, rest = url.partition("://")
    return rest.split("/", 1)[0].lower() if sep else ""


@dataclass(frozen=True)
class FetchOptions:
    """How a batch is fetched: at most ``concurrency`` feeds at a time and ``per_host`` per
    host; ``timeout`` bounds each feed as a whole (connect, redirects and body); ``max_bytes``
    caps the decompressed body."""

    concurrency: int = 32
    per_host: int = PER_HOST
    timeout: float = 20.0
    max_bytes: int = 10 * 2**20
    user_agent: str = USER_AGENT


DEFAULT_OPTIONS = FetchOptions()


async def fetch_all(
    requests: Sequence[FetchRequest],
    options: FetchOptions = DEFAULT_OPTIONS,
    *,
    on_result: Callable[[FetchResult], None] | None = None,
    stop: Callable[[], bool] | None = None,
    keep_content: bool = True,
    pause: Callable[[], bool] | None = None,
) -> list[FetchResult]:
    """Fetch every request as ``options`` say; results in request order.

    ``on_result`` is called as each feed finishes (progress bars). Once ``stop()`` returns
    true the downloads still going are abandoned: their results say ``STOPPED`` (a daemon
    asked to stop must not wait for a slow site's timeout). ``keep_content=False``: the returned
    results carry no body (``on_result`` had it), so a run does not hold every body at once.
    While ``pause()`` is true no new download starts (the parser is behind: bodies would pile up
    in memory); downloads under way go on.
    """
    if not requests:
        return []
    concurrency = max(1, options.concurrency)
    gate = asyncio.Semaphore(concurrency)
    go = asyncio.Event()  # cleared while ``pause()`` says so
    if pause is None or not pause():
        go.set()
    per_host = max(1, min(options.per_host, concurrency))
    hosts: dict[str, asyncio.Semaphore] = {}
    headers = {"User-Agent": options.user_agent, "Accept": ACCEPT}
    timeout, max_bytes = options.timeout, options.max_bytes
    # One session for the feeds that must stay on public addresses, one (made only when a feed
    # asks) for intranet feeds: their connections are never shared.
    sessions: dict[bool, Session] = {}

    def session_for(allow_private: bool) -> Session:
        if allow_private not in sessions:
            sessions[allow_private] = guarded_session(
                allow_private=allow_private,
                limit=concurrency,
                per_host=per_host,
                timeout=timeout,
                headers=headers,
                outer_timeout=True,
            )
        return sessions[allow_private]

    try:

        async def one(request: FetchRequest) -> FetchResult:
            host = hosts.setdefault(_host(request.url), asyncio.Semaphore(per_host))
            # The host's slot first: a request waiting for its busy site holds no global slot.
            async with host, gate:
                if not go.is_set():
                    await go.wait()
                result = await fetch_one(
                    session_for(request.allow_private),
                    request,
                    timeout=timeout,
                    max_bytes=max_bytes,
                )
            if on_result is not None:
                try:
                    on_result(result)
                except Exception:  # a progress display's bug must not abort the batch
                    log.exception("on_result callback failed for %s", request.url)
            if not keep_content and result.content is not None:
                result = replace(result, content=None)
            return result

        tasks = [asyncio.ensure_future(one(r)) for r in requests]
        watcher = asyncio.ensure_future(_cancel_on_stop(stop, tasks)) if stop else None
        pacer = asyncio.ensure_future(_pace(pause, go)) if pause else None
        try:
            done = await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            for helper in (watcher, pacer):
                if helper is not None:
                    helper.cancel()
        return [_settled(request, got) for request, got in zip(requests, done, strict=True)]
    finally:
        for session in sessions.values():
            await session.close()


async def _pace(pause: Callable[[], bool], go: asyncio.Event) -> None:
    """Hold new downloads while ``pause()`` is true (looked at every ``STOP_POLL`` seconds)."""
    while True:
        if pause():
            go.clear()
        else:
            go.set()
        await asyncio.sleep(STOP_POLL)


async def _cancel_on_stop(stop: Callable[[], bool], tasks: Sequence[asyncio.Future[Any]]) -> None:
    while not stop():
        await asyncio.sleep(STOP_POLL)
    for task in tasks:
        task.cancel()


def _settled(request: FetchRequest, got: FetchResult | BaseException) -> FetchResult:
    if isinstance(got, asyncio.CancelledError):
        return FetchResult(url=request.url, status=FetchStatus.STOPPED, error="the run stopped")
    if isinstance(got, BaseException):  # fetch_one turns every failure into a value
        raise got
    return got


def fetch_all_sync(
    requests: Sequence[FetchRequest],
    options: FetchOptions = DEFAULT_OPTIONS,
    *,
    on_result: Callable[[FetchResult], None] | None = None,
    stop: Callable[[], bool] | None = None,
    keep_content: bool = True,
    pause: Callable[[], bool] | None = None,
) -> list[FetchResult]:
    """``fetch_all`` for synchronous callers (CLI, scheduler jobs).

    Called from inside a running event loop (a web handler), it runs in a helper thread.
    """
    coro = fetch_all(
        requests, options, on_result=on_result, stop=stop, keep_content=keep_content, pause=pause
    )
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as helper:
        return helper.submit(asyncio.run, coro).result()


async def fetch_one(
    session: Session, request: FetchRequest, *, timeout: float, max_bytes: int
) -> FetchResult:
    """Fetch one feed (HTTP or local file); every failure comes back as a FAILED result."""
    started = time.monotonic()
    url = request.url.strip()
    try:
        kind = _kind(url)
        if kind == "file":
            result = await asyncio.to_thread(_read_file, request, _file_path(url), max_bytes)
        else:
            async with asyncio.timeout(timeout):
                result = await _get(session, request, url, max_bytes)
    except FetchError as exc:
        result = _failure(request, exc)
    except TimeoutError:
        result = _failure(request, FetchTimeout(url, f"timed out after {timeout:g} s"))
    except Exception as exc:  # one feed's surprise must not stop the batch
        log.warning("unexpected error fetching %s", url, exc_info=True)
        result = _failure(request, FetchError(url, _one_line(f"{type(exc).__name__}: {exc}")))
    return replace(result, elapsed=time.monotonic() - started)


def _kind(url: str) -> str:
    if not url:
        raise FetchError(url, "bad URL: empty")
    # The common case first: splitting thousands of feed URLs costs more than looking.
    scheme = "http" if url.startswith(("http://", "https://")) else urlsplit(url).scheme.lower()
    if scheme in ("http", "https"):
        problem = checked_url_problem(url)
        if problem is not None:
            raise FetchError(url, f"bad URL: {problem}")
        return "http"
    # One letter is a Windows drive ("C:\\feeds\\a.xml"), not a scheme.
    if scheme == "file" or not scheme or len(scheme) == 1:
        return "file"
    raise FetchError(url, f"bad URL: unsupported scheme {scheme!r}")


async def _get(session: Session, request: FetchRequest, url: str, max_bytes: int) -> FetchResult:
    headers: dict[str, str] = {}
    if request.etag:
        headers["If-None-Match"] = request.etag
    if request.last_modified:
        headers["If-Modified-Since"] = request.last_modified
    try:
        async with session.get(url, headers=headers, max_redirects=MAX_REDIRECTS) as response:
            return await _handle(request, url, response, max_bytes)
    except FetchError:
        raise
    except (ClientError, Refused, TimeoutError, ValueError) as exc:
        raise translate_error(url, exc, allow_private=request.allow_private) from exc


async def _handle(
    request: FetchRequest, url: str, response: Response, max_bytes: int
) -> FetchResult:
    status = response.status
    headers = response.headers
    if status == 304:
        # Read the (empty) body: a response left unread closes its connection, and the next
        # feed on that site would pay a new connection (and TLS handshake).
        await _drain(response)
        return FetchResult(
            url=request.url,
            status=FetchStatus.NOT_MODIFIED,
            final_url=str(response.url),
            http_status=status,
            content_type=headers.get("content-type"),
            permanent_redirect=_permanent_target(response),
            etag=headers.get("etag") or request.etag,
            last_modified=headers.get("last-modified") or request.last_modified,
            retry_after=_cache_lifetime(headers),
        )
    base = FetchResult(
        url=request.url,
        status=FetchStatus.FAILED,
        final_url=str(response.url),
        http_status=status,
        content_type=headers.get("content-type"),
        permanent_redirect=_permanent_target(response),
    )
    if status >= 300 or status < 200:
        error = HTTPStatusError(url, status, f"HTTP {status} {response.reason or ''}".strip())
        retry = _retry_after(response.headers) if status in (429, 503) else None
        log.info("feed failed: %s", error)
        await _drain(response)
        return replace(base, error=error.reason, gone=status == 410, retry_after=retry)
    declared = response.headers.get("content-length", "")
    # Compressed bodies are judged after decompression, below; plain ones can be refused now.
    if (
        declared.isdigit()
        and "content-encoding" not in response.headers
        and int(declared) > max_bytes
    ):
        raise TooLargeError(url, f"body of {declared} bytes is over the {max_bytes}-byte cap")
    body = bytearray()
    async for chunk in response.content.iter_chunked(2**16):  # decoded: a gzip bomb counts
        body += chunk
        if len(body) > max_bytes:
            raise TooLargeError(url, f"body is over the {max_bytes}-byte cap")
    return replace(
        base,
        status=FetchStatus.OK,
        content=bytes(body),
        etag=response.headers.get("etag"),
        last_modified=response.headers.get("last-modified"),
        retry_after=_cache_lifetime(response.headers),
    )


#: An error page longer than this is not read: closing the connection costs less.
_DRAIN_MAX = 64 * 1024


async def _drain(response: Response) -> None:
    """Read a short body we do not need, so that its connection can serve the next request.

    A 304 has no body by definition; other bodies are read when declared short.
    """
    declared = response.headers.get("content-length", "")
    if response.status == 304 or (declared.isdigit() and int(declared) <= _DRAIN_MAX):
        # On failure the status stays the outcome; the connection is simply not reused.
        with contextlib.suppress(ClientError, TimeoutError):
            await response.read()


def _permanent_target(response: Response) -> str | None:
    """Where the feed moved for good: the URL reached by the leading run of 301/308 hops.

    A 302 after a 301 means the 301's target is permanent but not what came after it.
    """
    target: str | None = None
    hops = [*response.history, response]
    for hop, nxt in itertools.pairwise(hops):
        if hop.status not in _PERMANENT:
            break
        target = str(nxt.url)
    return target


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), if usable."""
    value = headers.get("retry-after", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _cache_lifetime(headers: Mapping[str, str]) -> float | None:
    """How long the response may be reused: Cache-Control max-age, else Expires."""
    control = headers.get("cache-control", "")
    if _NO_CACHE.search(control):
        return None
    m = _MAX_AGE.search(control)
    if m:
        return float(m.group(1))
    expires = headers.get("expires", "").strip()
    if expires:
        try:
            when = email.utils.parsedate_to_datetime(expires)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max(0.0, (when - datetime.now(UTC)).total_seconds())
    return None


def _file_path(url: str) -> Path:
    parts = urlsplit(url)
    if parts.scheme.lower() == "file":
        if parts.netloc not in ("", "localhost"):
            raise FetchError(url, f"bad URL: file on another host {parts.netloc!r}")
        return Path(url2pathname(unquote(parts.path)))
    return Path(url).expanduser()


def _read_file(request: FetchRequest, path: Path, max_bytes: int) -> FetchResult:
    """Read a local feed with the same size cap. Its mtime plays the part of Last-Modified and
    (mtime in nanoseconds, size) of an ETag: a file rewritten within the same second is read."""
    url = request.url
    try:
        with path.open("rb") as fh:
            st = os.fstat(fh.fileno())
            last_modified = email.utils.formatdate(st.st_mtime, usegmt=True)
            etag = f'"{st.st_mtime_ns:x}-{st.st_size:x}"'
            same = request.etag == etag if request.etag else request.last_modified == last_modified
            if same:
                return FetchResult(
                    url=url,
                    status=FetchStatus.NOT_MODIFIED,
                    final_url=url,
                    etag=etag,
                    last_modified=last_modified,
                )
            content = fh.read(max_bytes + 1)
    except OSError as exc:
        raise FetchError(url, _one_line(exc.strerror or type(exc).__name__) + f": {path}") from exc
    if len(content) > max_bytes:
        raise TooLargeError(url, f"file is over the {max_bytes}-byte cap")
    return FetchResult(
        url=url,
        status=FetchStatus.OK,
        content=content,
        final_url=url,
        etag=etag,
        last_modified=last_modified,
    )


def _failure(request: FetchRequest, exc: FetchError) -> FetchResult:
    log.info("feed failed: %s", exc)
    return FetchResult(url=request.url, status=FetchStatus.FAILED, error=_one_line(exc.reason))


def _one_line(text: str) -> str:
    return " ".join(text.split())[:300]
