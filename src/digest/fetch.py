"""Fetch many feeds concurrently (httpx async): conditional GET, size cap, per-feed timeout.

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

import httpx

from digest.errors import (
    BlockedAddressError,
    FetchError,
    FetchTimeout,
    HTTPStatusError,
    TooLargeError,
)
from digest.models import FetchRequest, FetchResult, FetchStatus
from digest.netguard import GuardedTransport, Refused
from digest.urls import url_problem

__all__ = ["PER_HOST", "USER_AGENT", "fetch_all", "fetch_all_sync"]

log = logging.getLogger(__name__)


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


class _PoolPerOrigin(httpx.AsyncBaseTransport):
    """One connection pool per origin (scheme, host, port), created on first use.

    httpcore's pool checks every idle connection's socket on each request and response, and hands
    one idle connection to several waiting requests at once (the losers queue again): with
    hundreds of connections in one pool that costs more CPU than the feeds' bytes. Small pools,
    one per site, keep both costs in proportion to ``per_host``; keep-alive still works per site.
    """

    def __init__(self, per_host: int, *, allow_private: bool = False) -> None:
        self._per_host = per_host
        self._allow_private = allow_private
        # One TLS context (the CA bundle is read once) shared by every pool.
        self._ssl = httpx.create_ssl_context()
        self._pools: dict[tuple[str, str, int | None], httpx.AsyncHTTPTransport] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        key = (url.scheme, url.host, url.port)
        pool = self._pools.get(key)
        if pool is None:
            # Every connection, redirects included, goes through the address guard: a feed
            # (or its 302) pointing at 127.0.0.1 or a metadata address is refused.
            pool = self._pools[key] = GuardedTransport(
                self._allow_private, ssl_context=self._ssl, max_connections=self._per_host
            )
        return await pool.handle_async_request(request)

    async def aclose(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            await pool.aclose()


def _host(url: str) -> str:
    try:
        return urlsplit(url).netloc.lower()
    except ValueError:
        return ""


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
) -> list[FetchResult]:
    """Fetch every request as ``options`` say; results in request order.

    ``on_result`` is called as each feed finishes (progress bars). Once ``stop()`` returns
    true the downloads still going are abandoned: their results say ``STOPPED`` (a daemon
    asked to stop must not wait for a slow site's timeout).
    """
    if not requests:
        return []
    concurrency = max(1, options.concurrency)
    gate = asyncio.Semaphore(concurrency)
    per_host = max(1, min(options.per_host, concurrency))
    hosts: dict[str, asyncio.Semaphore] = {}
    headers = {"User-Agent": options.user_agent, "Accept": ACCEPT}
    timeout, max_bytes = options.timeout, options.max_bytes
    # One client for the feeds that must stay on public addresses, one (made only when a feed
    # asks) for intranet feeds: their connections are never shared.
    clients: dict[bool, httpx.AsyncClient] = {}

    def client_for(allow_private: bool) -> httpx.AsyncClient:
        if allow_private not in clients:
            clients[allow_private] = httpx.AsyncClient(
                headers=headers,
                timeout=httpx.Timeout(timeout),
                # Used by proxy pools from the environment; direct requests go through
                # _PoolPerOrigin.
                limits=httpx.Limits(max_connections=concurrency),
                transport=_PoolPerOrigin(per_host, allow_private=allow_private),
                follow_redirects=True,
                max_redirects=MAX_REDIRECTS,
            )
        return clients[allow_private]

    try:

        async def one(request: FetchRequest) -> FetchResult:
            host = hosts.setdefault(_host(request.url), asyncio.Semaphore(per_host))
            client = client_for(request.allow_private)
            # The host's slot first: a request waiting for its busy site holds no global slot.
            async with host, gate:
                result = await fetch_one(client, request, timeout=timeout, max_bytes=max_bytes)
            if on_result is not None:
                try:
                    on_result(result)
                except Exception:  # a progress display's bug must not abort the batch
                    log.exception("on_result callback failed for %s", request.url)
            return result

        tasks = [asyncio.ensure_future(one(r)) for r in requests]
        watcher = asyncio.ensure_future(_cancel_on_stop(stop, tasks)) if stop else None
        try:
            done = await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            if watcher is not None:
                watcher.cancel()
        return [_settled(request, got) for request, got in zip(requests, done, strict=True)]
    finally:
        for client in clients.values():
            await client.aclose()


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
) -> list[FetchResult]:
    """``fetch_all`` for synchronous callers (CLI, scheduler jobs).

    Called from inside a running event loop (a web handler), it runs in a helper thread.
    """
    coro = fetch_all(requests, options, on_result=on_result, stop=stop)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as helper:
        return helper.submit(asyncio.run, coro).result()


async def fetch_one(
    client: httpx.AsyncClient, request: FetchRequest, *, timeout: float, max_bytes: int
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
                result = await _get(client, request, url, max_bytes)
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
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("http", "https"):
        problem = url_problem(url)
        if problem is not None:
            raise FetchError(url, f"bad URL: {problem}")
        return "http"
    # One letter is a Windows drive ("C:\\feeds\\a.xml"), not a scheme.
    if scheme == "file" or not scheme or len(scheme) == 1:
        return "file"
    raise FetchError(url, f"bad URL: unsupported scheme {scheme!r}")


async def _get(
    client: httpx.AsyncClient, request: FetchRequest, url: str, max_bytes: int
) -> FetchResult:
    headers: dict[str, str] = {}
    if request.etag:
        headers["If-None-Match"] = request.etag
    if request.last_modified:
        headers["If-Modified-Since"] = request.last_modified
    try:
        async with client.stream("GET", url, headers=headers) as response:
            return await _handle(request, url, response, max_bytes)
    except httpx.TimeoutException as exc:
        raise FetchTimeout(url, _reason("timed out", exc)) from exc
    except httpx.TooManyRedirects as exc:
        raise FetchError(url, f"more than {MAX_REDIRECTS} redirects") from exc
    except Refused as exc:
        hint = "" if request.allow_private else " (an intranet feed may set allow_private)"
        raise BlockedAddressError(url, f"refused: {exc}{hint}") from None
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
        raise FetchError(url, _reason("bad URL", exc)) from exc
    except httpx.ConnectError as exc:
        raise FetchError(url, _reason("cannot connect", exc)) from exc
    except httpx.DecodingError as exc:
        raise FetchError(url, _reason("bad content encoding", exc)) from exc
    except httpx.HTTPError as exc:
        raise FetchError(url, _reason(type(exc).__name__, exc)) from exc


async def _handle(
    request: FetchRequest, url: str, response: httpx.Response, max_bytes: int
) -> FetchResult:
    status = response.status_code
    base = FetchResult(
        url=request.url,
        status=FetchStatus.FAILED,
        final_url=str(response.url),
        http_status=status,
        content_type=response.headers.get("content-type"),
        permanent_redirect=_permanent_target(response),
    )
    if status == 304:
        # Read the (empty) body: a response left unread closes its connection, and the next
        # feed on that site would pay a new connection (and TLS handshake).
        await _drain(response)
        return replace(
            base,
            status=FetchStatus.NOT_MODIFIED,
            etag=response.headers.get("etag") or request.etag,
            last_modified=response.headers.get("last-modified") or request.last_modified,
            retry_after=_cache_lifetime(response.headers),
        )
    if status >= 300 or status < 200:
        error = HTTPStatusError(url, status, f"HTTP {status} {response.reason_phrase}".strip())
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
    async for chunk in response.aiter_bytes():
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


async def _drain(response: httpx.Response) -> None:
    """Read a short body we do not need, so that its connection can serve the next request.

    A 304 has no body by definition; other bodies are read when declared short.
    """
    declared = response.headers.get("content-length", "")
    if response.status_code == 304 or (declared.isdigit() and int(declared) <= _DRAIN_MAX):
        # On failure the status stays the outcome; the connection is simply not reused.
        with contextlib.suppress(httpx.HTTPError):
            await response.aread()


def _permanent_target(response: httpx.Response) -> str | None:
    """Where the feed moved for good: the URL reached by the leading run of 301/308 hops.

    A 302 after a 301 means the 301's target is permanent but not what came after it.
    """
    target: str | None = None
    hops = [*response.history, response]
    for hop, nxt in itertools.pairwise(hops):
        if hop.status_code not in _PERMANENT:
            break
        target = str(nxt.request.url)
    return target


def _retry_after(headers: httpx.Headers) -> float | None:
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


def _cache_lifetime(headers: httpx.Headers) -> float | None:
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
    """Read a local feed with the same size cap; its mtime plays the part of Last-Modified."""
    url = request.url
    try:
        with path.open("rb") as fh:
            mtime = os.fstat(fh.fileno()).st_mtime
            last_modified = email.utils.formatdate(mtime, usegmt=True)
            if request.last_modified == last_modified:
                return FetchResult(
                    url=url,
                    status=FetchStatus.NOT_MODIFIED,
                    final_url=url,
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
        last_modified=last_modified,
    )


def _failure(request: FetchRequest, exc: FetchError) -> FetchResult:
    log.info("feed failed: %s", exc)
    return FetchResult(url=request.url, status=FetchStatus.FAILED, error=_one_line(exc.reason))


def _reason(prefix: str, exc: BaseException) -> str:
    detail = _one_line(str(exc))
    return f"{prefix}: {detail}" if detail else prefix


def _one_line(text: str) -> str:
    return " ".join(text.split())[:300]
