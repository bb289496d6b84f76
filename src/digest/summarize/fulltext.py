"""Full article text for teaser feeds: fetch the page safely (no private or metadata addresses,
checked on the IP actually connected to, on every redirect; size cap, timeout, per-host
concurrency) and extract the main text with trafilatura.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
import ssl
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx
import trafilatura

from digest.errors import (
    BlockedAddressError,
    DigestError,
    FetchError,
    FetchTimeout,
    HTTPStatusError,
    TooLargeError,
)
from digest.summarize import clean

MAX_REDIRECTS = 5
USER_AGENT = "digest/0.1 (+https://github.com/digest-newsletter/digest)"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Cloud instance-metadata endpoints: refused even for allowlisted feeds (credentials live there).
METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata.goog", "metadata"})
METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack...
        "169.254.170.2",  # AWS ECS task metadata
        "fd00:ec2::254",  # AWS over IPv6
        "100.100.100.200",  # Alibaba Cloud
    )
)
_CGNAT = ipaddress.ip_network("100.64.0.0/10")


@dataclass(frozen=True, slots=True)
class FullTextRequest:
    """One article page to fetch; ``allow_private`` comes from the feed's allowlist."""

    url: str
    allow_private: bool = False


def address_refusal(ip: IPAddress, *, allow_private: bool = False) -> str | None:
    """Why digest will not connect to ``ip`` (e.g. "loopback"), or None when it may."""
    if isinstance(ip, ipaddress.IPv6Address):
        # An IPv6 form that carries an IPv4 address is judged by that address.
        if ip.ipv4_mapped is not None:
            return address_refusal(ip.ipv4_mapped, allow_private=allow_private)
        embedded = ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None:
            inner = address_refusal(embedded, allow_private=allow_private)
            if inner is not None:
                return inner
    if ip in METADATA_ADDRESSES:
        return "cloud metadata"
    if ip.is_multicast:
        return "multicast"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        kind = "loopback"
    elif ip.is_reserved:  # before "private": 240.0.0.0/4 is both
        return "reserved"
    elif ip.is_link_local:
        kind = "link-local"
    elif isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT:
        kind = "carrier-grade NAT"
    elif ip.is_private:
        kind = "private"
    elif not ip.is_global:
        kind = "non-public"
    else:
        return None
    return None if allow_private else kind


class _Refused(Exception):
    """Raised inside the connection layer; turned into BlockedAddressError with the URL."""


async def _resolve(host: str, port: int) -> list[IPAddress]:
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
    seen: list[IPAddress] = []
    for info in infos:
        ip = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if ip not in seen:
            seen.append(ip)
    return seen


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves the host itself, refuses if any address is off limits, then connects to the
    address it checked, so DNS cannot answer differently between the check and the connect."""

    def __init__(self, allow_private: bool) -> None:
        self._inner = httpcore.AnyIOBackend()
        self._allow_private = allow_private

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        if host.lower().rstrip(".") in METADATA_HOSTS:
            raise _Refused(f"{host} is a cloud metadata host")
        addresses = await _resolve(host, port)
        for ip in addresses:
            reason = address_refusal(ip, allow_private=self._allow_private)
            if reason is not None:
                raise _Refused(f"{host} resolves to {ip} ({reason} address)")
        error: Exception = httpcore.ConnectError(f"no address for {host}")
        for ip in addresses:  # like a browser, try each address in turn
            try:
                return await self._inner.connect_tcp(
                    str(ip),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        raise error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise _Refused("unix sockets are not fetched")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    # Loading the CA bundle takes a few hundred milliseconds: once per process is enough.
    return httpx.create_ssl_context(trust_env=False)


class _GuardedTransport(httpx.AsyncHTTPTransport):
    def __init__(self, allow_private: bool) -> None:
        super().__init__(trust_env=False)
        # httpx offers no way to choose the network backend: swap in a pool that uses ours.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=_ssl_context(),
            max_connections=50,
            network_backend=_GuardedBackend(allow_private),
        )


def _check_url(original: str, url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"}:
        raise BlockedAddressError(original, f"only http and https are fetched, not {url!r}")
    if not parts.hostname:
        raise BlockedAddressError(original, f"no host in {url!r}")
    if parts.hostname.rstrip(".") in METADATA_HOSTS:
        raise BlockedAddressError(original, f"{parts.hostname} is a cloud metadata host")


async def _read_capped(response: httpx.Response, url: str, max_bytes: int) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise TooLargeError(url, f"page is {int(declared)} bytes, over the {max_bytes} cap")
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():  # decoded: a gzip bomb counts at full size
        size += len(chunk)
        if size > max_bytes:
            raise TooLargeError(url, f"page is over the {max_bytes} bytes cap")
        chunks.append(chunk)
    return b"".join(chunks)


def extract_text(body: bytes, url: str, content_type: str) -> str:
    """Article page -> clean text (paragraphs separated by blank lines)."""
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == "text/plain":
        return clean.plain_to_text(body.decode("utf-8", "replace"))
    if kind and kind not in {"text/html", "application/xhtml+xml"}:
        raise FetchError(url, f"not an HTML page ({kind})")
    try:
        text = trafilatura.extract(
            body, url=url, include_comments=False, include_tables=False, favor_precision=True
        )
    except Exception as exc:  # trafilatura/lxml errors vary by input: report, never crash
        raise FetchError(url, f"could not extract the article text: {exc}") from exc
    if not text or not text.strip():
        raise FetchError(url, "no article text found on the page")
    # trafilatura puts one paragraph per line.
    return clean.plain_to_text(str(text).replace("\n", "\n\n"))


async def _fetch_one(client: httpx.AsyncClient, url: str, max_bytes: int) -> str:
    current = url
    for _ in range(MAX_REDIRECTS + 1):
        _check_url(url, current)
        try:
            async with client.stream("GET", current) as response:
                location = response.headers.get("location")
                if response.is_redirect and location:
                    # Followed by hand so every hop goes through the same checks.
                    current = urljoin(str(response.url), location)
                    continue
                if response.status_code >= 400:
                    raise HTTPStatusError(url, response.status_code)
                body = await _read_capped(response, url, max_bytes)
                content_type = response.headers.get("content-type", "")
                final = str(response.url)
        except _Refused as exc:
            raise BlockedAddressError(url, str(exc)) from None
        except httpx.TimeoutException as exc:
            raise FetchTimeout(url, "timed out") from exc
        except httpx.HTTPError as exc:
            raise FetchError(url, f"{type(exc).__name__}: {exc}") from exc
        return await asyncio.to_thread(extract_text, body, final, content_type)
    raise FetchError(url, f"more than {MAX_REDIRECTS} redirects")


async def fetch_full_texts(
    requests: Sequence[FullTextRequest],
    *,
    concurrency_per_host: int = 2,
    timeout: float = 15.0,
    max_bytes: int = 5 * 2**20,
) -> dict[str, str | DigestError]:
    """Fetch and extract each article page; failures are values (a DigestError), keyed by URL."""
    limits: dict[str, asyncio.Semaphore] = {}
    clients: dict[bool, httpx.AsyncClient] = {}

    def client_for(allow_private: bool) -> httpx.AsyncClient:
        if allow_private not in clients:
            clients[allow_private] = httpx.AsyncClient(
                transport=_GuardedTransport(allow_private),
                timeout=httpx.Timeout(timeout),
                headers={"User-Agent": USER_AGENT, "Accept": "text/html,*/*;q=0.5"},
                follow_redirects=False,
                trust_env=False,
            )
        return clients[allow_private]

    async def one(request: FullTextRequest) -> tuple[str, str | DigestError]:
        try:
            host = (urlsplit(request.url).hostname or "").lower()
        except ValueError as exc:  # "http://[::1": no host to even queue on
            return request.url, FetchError(request.url, f"invalid URL: {exc}")
        gate = limits.setdefault(host, asyncio.Semaphore(concurrency_per_host))
        async with gate:
            try:
                async with asyncio.timeout(timeout):
                    text = await _fetch_one(
                        client_for(request.allow_private), request.url, max_bytes
                    )
            except DigestError as exc:
                return request.url, exc
            except TimeoutError:
                return request.url, FetchTimeout(request.url, f"no page within {timeout:g} s")
            except ValueError as exc:  # malformed URL (bad port, bad IPv6 literal...)
                return request.url, FetchError(request.url, f"invalid URL: {exc}")
        return request.url, text

    unique = list({r.url: r for r in requests}.values())
    try:
        results = await asyncio.gather(*(one(r) for r in unique))
    finally:
        for client in clients.values():
            await client.aclose()
    return dict(results)
