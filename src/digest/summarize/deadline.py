"""An HTTP client whose timeout bounds the whole request (connect, send, headers, body): httpx's
own timeout is per network operation, so an endpoint that trickles a byte now and then would
hold a run for ever.
"""

from __future__ import annotations

import math
import ssl
import time
import typing
from collections.abc import Iterable

import httpcore
import httpx

__all__ = ["DeadlineClient"]


class _Clock:
    """The deadline of the request under way (one request at a time per client)."""

    def __init__(self) -> None:
        self.deadline = math.inf

    def left(self, timeout: float | None) -> float:
        """The time one network operation may take: its own timeout, at most what is left."""
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise httpcore.ReadTimeout("the request's time is up")
        return remaining if timeout is None else min(timeout, remaining)


class _Stream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream, clock: _Clock) -> None:
        self._inner = inner
        self._clock = clock

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._clock.left(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._clock.left(timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        inner = self._inner.start_tls(ssl_context, server_hostname, self._clock.left(timeout))
        return _Stream(inner, self._clock)

    def get_extra_info(self, info: str) -> typing.Any:
        return self._inner.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    def __init__(self, clock: _Clock) -> None:
        self._inner = httpcore.SyncBackend()
        self._clock = clock

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._inner.connect_tcp(
            host, port, self._clock.left(timeout), local_address, socket_options
        )
        return _Stream(stream, self._clock)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._inner.connect_unix_socket(path, self._clock.left(timeout), socket_options)
        return _Stream(stream, self._clock)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class DeadlineClient:
    """POSTs JSON and reads the answer, all of it within ``timeout`` seconds and ``max_bytes``;
    ``httpx.TimeoutException`` when time is up, ``httpx.HTTPError`` otherwise."""

    def __init__(self, timeout: float, headers: dict[str, str], max_bytes: int) -> None:
        self.timeout = timeout
        self.max_bytes = max_bytes
        self._clock = _Clock()
        transport = httpx.HTTPTransport(trust_env=False)
        # httpx offers no way to choose the network backend: swap in a pool that uses ours.
        transport._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            network_backend=_Backend(self._clock),
        )
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout), headers=headers, transport=transport, trust_env=False
        )

    @property
    def headers(self) -> httpx.Headers:
        """The headers sent with every request (the API key's ``Authorization`` among them)."""
        return self._client.headers

    def post_json(self, url: str, body: object) -> tuple[int, bytes]:
        """The status and body of one POST; a body over ``max_bytes`` is an ``httpx.HTTPError``."""
        self._clock.deadline = time.monotonic() + self.timeout
        try:
            with self._client.stream("POST", url, json=body) as response:
                chunks: list[bytes] = []
                size = 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise httpx.DecodingError(f"answer over {self.max_bytes} bytes")
                    chunks.append(chunk)
                return response.status_code, b"".join(chunks)
        finally:
            self._clock.deadline = math.inf

    def close(self) -> None:
        self._client.close()
