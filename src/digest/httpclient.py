"""The guarded HTTP client every outside fetch uses (feeds, their redirects, article pages):
aiohttp, chosen by measurement (docs/benchmarks.md), with a resolver and a per-hop check that
refuse private, loopback, link-local and metadata addresses unless ``allow_private``.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import socket
from collections.abc import Mapping

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from digest.errors import BlockedAddressError, FetchError, FetchTimeout
from digest.netguard import METADATA_HOSTS, Refused, address_refusal
from digest.urls import url_problem

log = logging.getLogger(__name__)

__all__ = [
    "ClientError",
    "GuardedResolver",
    "Refused",
    "Response",
    "checked_url_problem",
    "ensure_open_files",
    "guarded_session",
    "translate_error",
]

#: What the calling modules catch and hand to ``translate_error``.
ClientError = aiohttp.ClientError
Response = aiohttp.ClientResponse


class GuardedResolver(AbstractResolver):
    """Resolves a host name and refuses it if any of its addresses is off limits.

    aiohttp connects to the addresses returned here, so DNS cannot answer differently between
    the check and the connect. Addresses written in the URL itself are not resolved: the per-hop
    check (``_guard_hop``) judges those.
    """

    def __init__(self, allow_private: bool) -> None:
        self._inner = aiohttp.ThreadedResolver()
        self._allow_private = allow_private

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host.lower().rstrip(".") in METADATA_HOSTS:
            raise Refused(f"{host} is a cloud metadata host")
        found = await self._inner.resolve(host, port, family)
        for info in found:
            ip = ipaddress.ip_address(str(info["host"]).split("%", 1)[0])
            reason = address_refusal(ip, allow_private=self._allow_private)
            if reason is not None:
                raise Refused(f"{host} resolves to {ip} ({reason} address)")
        return found

    async def close(self) -> None:
        await self._inner.close()


@functools.lru_cache(maxsize=8192)
def checked_url_problem(url: str) -> str | None:
    """``urls.url_problem``, remembered: the fetcher checks a feed's URL before the request and
    the per-hop check sees it again; thousands of feeds cost one check each."""
    return url_problem(url)


def _hop_refusal(url: URL, allow_private: bool) -> str | None:
    """Why this hop (first request or a redirect) is not made, or None."""
    if url.scheme not in ("http", "https"):
        return f"only http and https are fetched, not {str(url)[:200]!r}"
    return _host_refusal((url.raw_host or "").lower().rstrip("."), allow_private)


@functools.lru_cache(maxsize=8192)
def _host_refusal(host: str, allow_private: bool) -> str | None:
    """The judgement of a host as written in a URL (sites repeat: remembered)."""
    if not host:
        return "no host in the URL"
    if host in METADATA_HOSTS:
        return f"{host} is a cloud metadata host"
    try:
        ip = ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None  # a name: the resolver judges its addresses
    reason = address_refusal(ip, allow_private=allow_private)
    return None if reason is None else f"{host} is a {reason} address"


def guarded_session(
    *,
    allow_private: bool,
    limit: int,
    per_host: int,
    timeout: float,
    headers: Mapping[str, str],
    outer_timeout: bool = False,
) -> aiohttp.ClientSession:
    """A session whose every connection, redirects included, passes the address guard.

    No cookies are kept (one feed's cookies are no business of another's) and the environment's
    proxy settings are ignored (a proxy would see the addresses instead of the guard).
    ``outer_timeout``: the caller wraps every request in ``asyncio.timeout(timeout)`` itself,
    so the session sets no timer of its own.
    """
    guard_private = allow_private

    async def guard_hop(
        request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        reason = _hop_refusal(request.url, guard_private)
        if reason is not None:
            raise Refused(reason)
        problem = checked_url_problem(str(request.url))
        if problem is not None:
            raise aiohttp.InvalidURL(request.url, problem)
        return await handler(request)

    ensure_open_files(limit + OPEN_FILES_MARGIN)
    connector = aiohttp.TCPConnector(
        limit=limit,
        limit_per_host=per_host,
        resolver=GuardedResolver(allow_private),
        ttl_dns_cache=300,
    )
    return aiohttp.ClientSession(
        connector=connector,
        headers=dict(headers),
        # No timer of aiohttp's own: the callers bound each fetch, body included, with
        # ``asyncio.timeout(timeout)``; a second timer per request costs CPU at thousands of feeds.
        timeout=aiohttp.ClientTimeout(total=None)
        if outer_timeout
        else aiohttp.ClientTimeout(total=timeout),
        cookie_jar=aiohttp.DummyCookieJar(),
        trust_env=False,
        middlewares=(guard_hop,),
        raise_for_status=False,
    )


#: Files a fetching process holds besides its connections: the database, the parse pool's pipes,
#: logs, the DNS resolver's sockets.
OPEN_FILES_MARGIN = 128


def ensure_open_files(needed: int) -> int:
    """Raise this process's soft open-files limit toward its hard limit when ``needed`` would
    pass it, as Go's runtime does at start: 500 connections in flight would otherwise fail with
    "Too many open files" under the soft limit of 1,024 most systems set. Never lowers it;
    returns the soft limit now, and logs once when even the hard limit is short."""
    try:
        import resource
    except ImportError:  # not on POSIX: nothing to raise
        return needed
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return needed
    if soft >= needed:
        return soft
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.debug("open-files limit not raised: %s", exc)
    if soft < needed:
        _warn_open_files(soft, needed)
    return soft


@functools.cache
def _warn_open_files(soft: int, needed: int) -> None:
    log.warning(
        "the open-files limit is %d, below the %d this many connections may need: lower "
        "[fetch] concurrency or raise the limit (systemd: LimitNOFILE=)",
        soft,
        needed,
    )


def translate_error(url: str, exc: BaseException, *, allow_private: bool) -> FetchError:
    """The project's error for a client failure (the caller raises it ``from exc``)."""
    if isinstance(exc, Refused):
        hint = "" if allow_private else " (an intranet feed may set allow_private)"
        return BlockedAddressError(url, f"refused: {exc}{hint}")
    if isinstance(exc, aiohttp.TooManyRedirects):
        return FetchError(url, "too many redirects")
    if isinstance(exc, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        return FetchTimeout(url, _reason("timed out", exc))
    if isinstance(exc, aiohttp.InvalidURL):
        return FetchError(url, f"bad URL: {_one_line(str(exc))}")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return FetchError(url, _reason("cannot connect", exc.os_error))
    if isinstance(exc, aiohttp.ClientPayloadError):
        return FetchError(url, _reason("bad body or content encoding", exc))
    if isinstance(exc, aiohttp.ClientResponseError):
        return FetchError(url, _reason("bad response", exc))
    return FetchError(url, _reason(type(exc).__name__, exc))


def _reason(prefix: str, exc: BaseException) -> str:
    detail = _one_line(str(exc))
    return f"{prefix}: {detail}" if detail else prefix


def _one_line(text: str) -> str:
    return " ".join(text.split())[:300]
