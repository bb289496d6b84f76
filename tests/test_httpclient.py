"""The guarded client (aiohttp): every connection and every redirect hop passes the address
guard, whether the URL names an address or a host that resolves to one; errors come back as the
project's own."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest
from pytest_httpserver import HTTPServer

from digest.errors import BlockedAddressError, FetchError, FetchTimeout
from digest.httpclient import ClientError, Refused, guarded_session, translate_error


async def _get(url: str, *, allow_private: bool, timeout: float = 5.0) -> tuple[int, bytes]:
    session = guarded_session(
        allow_private=allow_private, limit=4, per_host=2, timeout=timeout, headers={}
    )
    try:
        async with session.get(url) as response:
            return response.status, await response.read()
    finally:
        await session.close()


def _fetch(
    url: str, *, allow_private: bool, timeout: float = 5.0
) -> tuple[int, bytes] | FetchError:
    try:
        return asyncio.run(_get(url, allow_private=allow_private, timeout=timeout))
    except (ClientError, Refused, TimeoutError) as exc:
        return translate_error(url, exc, allow_private=allow_private)


def test_a_host_name_resolving_to_loopback_is_refused_by_the_resolver(
    httpserver: HTTPServer,
) -> None:
    httpserver.expect_request("/feed").respond_with_data("ok")
    url = f"http://localhost:{httpserver.port}/feed"
    got = _fetch(url, allow_private=False)
    assert isinstance(got, BlockedAddressError)
    assert "loopback" in got.reason
    assert "allow_private" in got.reason
    assert _fetch(url, allow_private=True) == (200, b"ok")


def test_a_redirect_to_a_loopback_name_is_refused_on_its_hop(httpserver: HTTPServer) -> None:
    # The first hop is allowed (allow_private session reaching 127.0.0.1 is not under test here):
    # a public session must refuse the hop to "localhost" even though it came as a redirect.
    httpserver.expect_request("/moved").respond_with_data(
        "", status=302, headers={"Location": f"http://localhost:{httpserver.port}/feed"}
    )
    got = _fetch(httpserver.url_for("/moved"), allow_private=False)
    assert isinstance(got, BlockedAddressError)


def test_metadata_hosts_are_refused_even_with_allow_private() -> None:
    got = _fetch("http://169.254.169.254/latest/meta-data/", allow_private=True)
    assert isinstance(got, BlockedAddressError)
    assert "metadata" in got.reason


def test_a_slow_server_becomes_a_fetch_timeout(httpserver: HTTPServer) -> None:
    import time

    def slow(_request: object) -> str:
        time.sleep(1.0)
        return "late"

    httpserver.expect_request("/slow").respond_with_handler(slow)  # type: ignore[arg-type]
    got = _fetch(httpserver.url_for("/slow"), allow_private=True, timeout=0.2)
    assert isinstance(got, FetchTimeout)


def test_nothing_listening_is_a_fetch_error_saying_cannot_connect() -> None:
    got = _fetch("http://127.0.0.1:9/feed", allow_private=True)
    assert isinstance(got, FetchError)
    assert not isinstance(got, BlockedAddressError)
    assert got.reason.startswith("cannot connect")


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1/x", "http://10.1.2.3/x", "http://[::1]/x", "http://[fe80::1]/x"]
)
def test_addresses_written_in_the_url_are_refused_without_allow_private(url: str) -> None:
    got = _fetch(url, allow_private=False)
    assert isinstance(got, BlockedAddressError)


_LOW_LIMIT = """
import logging, resource, sys
from digest.models import FetchRequest
from digest.reader.fetch import FetchOptions, fetch_all_sync
logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
resource.setrlimit(resource.RLIMIT_NOFILE, (256, int(sys.argv[2])))
[result] = fetch_all_sync(
    [FetchRequest(sys.argv[1], allow_private=True)], FetchOptions(concurrency=500)
)
print(result.status.value, resource.getrlimit(resource.RLIMIT_NOFILE)[0])
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="open-files limits are POSIX")
@pytest.mark.parametrize(("hard", "soft_after", "warned"), [(4096, 628, False), (400, 400, True)])
def test_a_fetch_raises_the_open_files_limit_to_what_its_connections_need(
    httpserver: HTTPServer, hard: int, soft_after: int, warned: bool
) -> None:
    """500 connections at once need more than the soft limit of 256 (or 1,024) many systems
    set: the fetch raises it toward the hard limit (500 + 128), and says so when it cannot."""
    httpserver.expect_request("/feed").respond_with_data("<rss/>")
    done = subprocess.run(
        [sys.executable, "-c", _LOW_LIMIT, httpserver.url_for("/feed"), str(hard)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.split() == ["ok", str(soft_after)]
    assert ("open-files limit is 400, below the 628" in done.stderr) is warned
