"""The address guard for every fetch of an outside URL (feeds, their redirects, article pages):
the host is resolved here, and a connection to a private, loopback, link-local or cloud-metadata
address is refused unless the feed allows private addresses (metadata never).
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
import ssl
from collections.abc import Iterable

import httpcore
import httpx

from digest.urls import METADATA_ADDRESSES, METADATA_HOSTS, IPAddress

__all__ = [
    "METADATA_ADDRESSES",
    "METADATA_HOSTS",
    "GuardedBackend",
    "GuardedTransport",
    "Refused",
    "address_refusal",
    "guarded_pool",
]


_CGNAT = ipaddress.ip_network("100.64.0.0/10")


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


class Refused(Exception):
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


class GuardedBackend(httpcore.AsyncNetworkBackend):
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
            raise Refused(f"{host} is a cloud metadata host")
        addresses = await _resolve(host, port)
        for ip in addresses:
            reason = address_refusal(ip, allow_private=self._allow_private)
            if reason is not None:
                raise Refused(f"{host} resolves to {ip} ({reason} address)")
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
        raise Refused("unix sockets are not fetched")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    # Loading the CA bundle takes a few hundred milliseconds: once per process is enough.
    return httpx.create_ssl_context(trust_env=False)


def guarded_pool(
    allow_private: bool,
    *,
    ssl_context: ssl.SSLContext | None = None,
    max_connections: int = 50,
) -> httpcore.AsyncConnectionPool:
    """An httpcore pool whose every connection goes through the guard."""
    return httpcore.AsyncConnectionPool(
        ssl_context=ssl_context or _ssl_context(),
        max_connections=max_connections,
        max_keepalive_connections=max_connections,
        network_backend=GuardedBackend(allow_private),
    )


class GuardedTransport(httpx.AsyncHTTPTransport):
    """An httpx transport whose connections go through the guard."""

    def __init__(
        self,
        allow_private: bool,
        *,
        ssl_context: ssl.SSLContext | None = None,
        max_connections: int = 50,
    ) -> None:
        context = ssl_context or _ssl_context()
        super().__init__(verify=context, trust_env=False)  # the CA bundle is not read again
        # httpx offers no way to choose the network backend: swap in a pool that uses ours.
        self._pool = guarded_pool(
            allow_private, ssl_context=context, max_connections=max_connections
        )
