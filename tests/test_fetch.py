"""fetch_all against a real local HTTP server: validators, failures as values, caps, redirects."""

from __future__ import annotations

import asyncio
import functools
import gzip
import http.server
import socket
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import brotli
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from digest.models import FetchRequest, FetchResult, FetchStatus
from digest.reader.fetch import USER_AGENT, FetchOptions, fetch_all_sync

#: A small synthetic feed: these tests need *a* feed, not the real corpus.
FEED = Path(__file__).resolve().parent / "data" / "synthetic-news.rss.xml"

#: The test server listens on 127.0.0.1: these requests are allowed private addresses, as an
#: intranet feed would be (the guard itself is tested in test_isolation and test_fulltext).
Local = functools.partial(FetchRequest, allow_private=True)

#: The test server listens on 127.0.0.1: these requests are allowed private addresses, as an
#: intranet feed would be (the guard itself is tested in test_isolation and test_fulltext).
Local = functools.partial(FetchRequest, allow_private=True)


@pytest.fixture
def feed_bytes() -> bytes:
    return FEED.read_bytes()


def test_first_fetch_returns_body_etag_and_project_user_agent(
    httpserver: HTTPServer, feed_bytes: bytes
) -> None:
    seen: list[str] = []

    def handler(request: Request) -> Response:
        seen.append(request.headers.get("User-Agent", ""))
        return Response(feed_bytes, headers={"ETag": '"v1"', "Content-Type": "application/rss+xml"})

    httpserver.expect_request("/feed").respond_with_handler(handler)
    [result] = fetch_all_sync([Local(httpserver.url_for("/feed"))])
    assert result.status is FetchStatus.OK
    assert result.content == feed_bytes
    assert result.etag == '"v1"'
    assert result.http_status == 200
    assert result.content_type == "application/rss+xml"
    assert seen == [USER_AGENT]
    assert "(+https://github.com/digest-newsletter/digest)" in USER_AGENT


def test_etag_is_sent_back_and_304_means_not_modified(
    httpserver: HTTPServer, feed_bytes: bytes
) -> None:
    def handler(request: Request) -> Response:
        if request.headers.get("If-None-Match") == '"v1"':
            return Response(status=304, headers={"ETag": '"v1"'})
        return Response(feed_bytes, headers={"ETag": '"v1"'})

    httpserver.expect_request("/feed").respond_with_handler(handler)
    url = httpserver.url_for("/feed")
    [first] = fetch_all_sync([Local(url)])
    [second] = fetch_all_sync([Local(url, etag=first.etag)])
    assert first.status is FetchStatus.OK
    assert second.status is FetchStatus.NOT_MODIFIED
    assert second.content is None
    assert second.etag == '"v1"'


def test_last_modified_is_sent_as_if_modified_since(
    httpserver: HTTPServer, feed_bytes: bytes
) -> None:
    stamp = "Wed, 21 Oct 2015 07:28:00 GMT"

    def handler(request: Request) -> Response:
        if request.headers.get("If-Modified-Since") == stamp:
            return Response(status=304)
        return Response(feed_bytes, headers={"Last-Modified": stamp})

    httpserver.expect_request("/feed").respond_with_handler(handler)
    url = httpserver.url_for("/feed")
    [first] = fetch_all_sync([Local(url)])
    [second] = fetch_all_sync([Local(url, last_modified=first.last_modified)])
    assert first.last_modified == stamp
    assert second.status is FetchStatus.NOT_MODIFIED
    assert second.last_modified == stamp


def test_server_errors_fail_their_feed_and_the_rest_of_the_batch_succeeds(
    httpserver: HTTPServer, feed_bytes: bytes
) -> None:
    httpserver.expect_request("/ok1").respond_with_data(feed_bytes)
    httpserver.expect_request("/boom").respond_with_data("oops", status=500)
    httpserver.expect_request("/missing").respond_with_data("no", status=404)
    httpserver.expect_request("/gone").respond_with_data("bye", status=410)
    httpserver.expect_request("/ok2").respond_with_data(feed_bytes)
    paths = ["/ok1", "/boom", "/missing", "/gone", "/ok2"]
    finished: list[str] = []
    results = fetch_all_sync(
        [Local(httpserver.url_for(p)) for p in paths],
        on_result=lambda r: finished.append(r.url),
    )
    assert [r.url for r in results] == [httpserver.url_for(p) for p in paths]
    assert sorted(finished) == sorted(r.url for r in results)
    ok1, boom, missing, gone, ok2 = results
    assert ok1.status is ok2.status is FetchStatus.OK
    assert (boom.status, boom.http_status, boom.error) == (
        FetchStatus.FAILED,
        500,
        "HTTP 500 INTERNAL SERVER ERROR",
    )
    assert missing.status is FetchStatus.FAILED
    assert missing.error is not None
    assert "404" in missing.error
    assert gone.status is FetchStatus.FAILED
    assert gone.gone
    assert not missing.gone


def test_a_feed_slower_than_the_timeout_fails_with_a_timeout(httpserver: HTTPServer) -> None:
    def slow(request: Request) -> Response:
        time.sleep(0.6)
        return Response("<rss/>")

    httpserver.expect_request("/slow").respond_with_handler(slow)
    [result] = fetch_all_sync([Local(httpserver.url_for("/slow"))], FetchOptions(timeout=0.2))
    assert result.status is FetchStatus.FAILED
    assert result.error is not None
    assert "timed out" in result.error


def test_body_over_the_cap_fails(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/big").respond_with_data(b"x" * 5000)
    [result] = fetch_all_sync([Local(httpserver.url_for("/big"))], FetchOptions(max_bytes=4096))
    assert result.status is FetchStatus.FAILED
    assert result.error is not None
    assert "4096-byte cap" in result.error


def test_cap_applies_after_decompression(httpserver: HTTPServer) -> None:
    bomb = gzip.compress(b" " * 100_000)
    httpserver.expect_request("/bomb").respond_with_data(bomb, headers={"Content-Encoding": "gzip"})
    [result] = fetch_all_sync([Local(httpserver.url_for("/bomb"))], FetchOptions(max_bytes=50_000))
    assert len(bomb) < 50_000
    assert result.status is FetchStatus.FAILED
    assert result.error is not None
    assert "cap" in result.error


def _peak_memory(request: FetchRequest, options: FetchOptions) -> tuple[FetchResult, int]:
    """One fetch, and the most memory Python held at once during it (tracemalloc)."""
    tracemalloc.start()
    try:
        [result] = fetch_all_sync([request], options)
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("encoding", ["gzip", "br"])
def test_a_compression_bomb_is_refused_before_it_is_inflated_in_memory(
    httpserver: HTTPServer, encoding: str
) -> None:
    """64 MB of zeros sent as ~64 KB: the download stops at the cap, and memory never holds
    more than a small fetch's plus the cap and a decompressed chunk (aiohttp inflates at most
    64 KB per step, and the body is checked after each chunk)."""
    inflated = bytes(64 * 1024 * 1024)
    bomb = gzip.compress(inflated, 9) if encoding == "gzip" else brotli.compress(inflated)
    del inflated
    headers = {"Content-Encoding": encoding}
    httpserver.expect_request("/bomb").respond_with_data(bomb, headers=headers)
    httpserver.expect_request("/small").respond_with_data(b"<rss/>")
    cap = 1024 * 1024
    options = FetchOptions(max_bytes=cap)
    _, baseline = _peak_memory(Local(httpserver.url_for("/small")), options)
    result, peak = _peak_memory(Local(httpserver.url_for("/bomb")), options)
    assert len(bomb) < cap
    assert result.status is FetchStatus.FAILED
    assert result.error is not None
    assert "cap" in result.error
    held = peak - baseline
    assert held < 4 * cap, f"{held / 1e6:.1f} MB more than a small fetch for a 1 MB cap"


def test_gzip_encoded_response_is_decompressed(httpserver: HTTPServer, feed_bytes: bytes) -> None:
    httpserver.expect_request("/gz").respond_with_data(
        gzip.compress(feed_bytes), headers={"Content-Encoding": "gzip"}
    )
    [result] = fetch_all_sync([Local(httpserver.url_for("/gz"))])
    assert result.status is FetchStatus.OK
    assert result.content == feed_bytes


def test_permanent_redirect_chain_records_the_new_location(
    httpserver: HTTPServer, feed_bytes: bytes
) -> None:
    final = httpserver.url_for("/new")
    httpserver.expect_request("/old").respond_with_response(
        Response(status=301, headers={"Location": httpserver.url_for("/older")})
    )
    httpserver.expect_request("/older").respond_with_response(
        Response(status=308, headers={"Location": final})
    )
    httpserver.expect_request("/new").respond_with_data(feed_bytes)
    [result] = fetch_all_sync([Local(httpserver.url_for("/old"))])
    assert result.status is FetchStatus.OK
    assert result.final_url == final
    assert result.permanent_redirect == final


def test_temporary_redirect_is_followed_but_not_recorded(
    httpserver: HTTPServer, feed_bytes: bytes
) -> None:
    httpserver.expect_request("/tmp").respond_with_response(
        Response(status=302, headers={"Location": httpserver.url_for("/feed")})
    )
    httpserver.expect_request("/feed").respond_with_data(feed_bytes)
    [result] = fetch_all_sync([Local(httpserver.url_for("/tmp"))])
    assert result.status is FetchStatus.OK
    assert result.permanent_redirect is None


def test_redirect_loop_fails(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/loop").respond_with_response(
        Response(status=302, headers={"Location": "/loop"})
    )
    [result] = fetch_all_sync([Local(httpserver.url_for("/loop"))])
    assert result.status is FetchStatus.FAILED
    assert result.error is not None
    assert "redirects" in result.error


def test_retry_after_on_503_in_seconds_or_as_a_date(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/busy").respond_with_data(
        "later", status=503, headers={"Retry-After": "120"}
    )
    httpserver.expect_request("/limited").respond_with_data(
        "later", status=429, headers={"Retry-After": "Fri, 01 Jan 2100 00:00:00 GMT"}
    )
    busy, limited = fetch_all_sync(
        [Local(httpserver.url_for("/busy")), Local(httpserver.url_for("/limited"))]
    )
    assert busy.status is FetchStatus.FAILED
    assert busy.retry_after == 120.0
    assert limited.retry_after is not None
    assert limited.retry_after > 365 * 86400


def test_cache_control_max_age_is_reported_on_success(
    httpserver: HTTPServer, feed_bytes: bytes
) -> None:
    httpserver.expect_request("/cached").respond_with_data(
        feed_bytes, headers={"Cache-Control": "public, max-age=1800"}
    )
    [result] = fetch_all_sync([Local(httpserver.url_for("/cached"))])
    assert result.retry_after == 1800.0


def test_connection_refused_is_a_failed_result() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    [result] = fetch_all_sync([Local(f"http://127.0.0.1:{port}/feed")])
    assert result.status is FetchStatus.FAILED
    assert result.error is not None
    assert "cannot connect" in result.error
    assert "\n" not in result.error


@pytest.mark.parametrize("url", ["http://", "ftp://example.com/feed", "", "http://exa mple/"])
def test_bad_urls_are_failed_results(url: str) -> None:
    [result] = fetch_all_sync([Local(url)])
    assert result.status is FetchStatus.FAILED
    assert result.error


def test_file_url_and_plain_path_are_read_from_disk(feed_bytes: bytes) -> None:
    path = FEED
    by_url, by_path = fetch_all_sync([FetchRequest(path.as_uri()), FetchRequest(str(path))])
    assert by_url.status is by_path.status is FetchStatus.OK
    assert by_url.content == by_path.content == feed_bytes


def test_unchanged_file_is_not_modified(tmp_path: Path) -> None:
    path = tmp_path / "feed.xml"
    path.write_bytes(b"<rss version='2.0'><channel/></rss>")
    [first] = fetch_all_sync([FetchRequest(str(path))])
    [second] = fetch_all_sync([FetchRequest(str(path), last_modified=first.last_modified)])
    assert second.status is FetchStatus.NOT_MODIFIED
    [third] = fetch_all_sync(
        [FetchRequest(str(path), etag=first.etag, last_modified=first.last_modified)]
    )
    assert third.status is FetchStatus.NOT_MODIFIED


def test_a_file_rewritten_within_the_same_second_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "feed.xml"
    path.write_bytes(b"<rss version='2.0'><channel/></rss>")
    [first] = fetch_all_sync([FetchRequest(str(path))])
    path.write_bytes(b"<rss version='2.0'><channel><title>new</title></channel></rss>")
    # Last-Modified has a one-second grain; the file's own validator does not.
    [second] = fetch_all_sync(
        [FetchRequest(str(path), etag=first.etag, last_modified=first.last_modified)]
    )
    assert second.status is FetchStatus.OK
    assert b"new" in (second.content or b"")


def test_missing_or_oversized_file_fails(tmp_path: Path) -> None:
    big = tmp_path / "big.xml"
    big.write_bytes(b"x" * 5000)
    missing, too_big = fetch_all_sync(
        [FetchRequest(str(tmp_path / "nope.xml")), FetchRequest(big.as_uri())],
        FetchOptions(max_bytes=4096),
    )
    assert missing.status is too_big.status is FetchStatus.FAILED
    assert missing.error is not None
    assert "nope.xml" in missing.error
    assert too_big.error is not None
    assert "cap" in too_big.error


def test_a_failing_progress_callback_does_not_abort_the_batch(
    httpserver: HTTPServer, feed_bytes: bytes
) -> None:
    httpserver.expect_request("/a").respond_with_data(feed_bytes)
    httpserver.expect_request("/b").respond_with_data(feed_bytes)

    def broken(result: object) -> None:
        raise ValueError("progress bar bug")

    results = fetch_all_sync(
        [Local(httpserver.url_for("/a")), Local(httpserver.url_for("/b"))],
        on_result=broken,
    )
    assert [r.status for r in results] == [FetchStatus.OK, FetchStatus.OK]


def test_sync_wrapper_works_inside_a_running_event_loop(
    httpserver: HTTPServer, feed_bytes: bytes
) -> None:
    httpserver.expect_request("/feed").respond_with_data(feed_bytes)

    async def handler() -> list[FetchResult]:
        return fetch_all_sync([Local(httpserver.url_for("/feed"))])

    [result] = asyncio.run(handler())
    assert result.status is FetchStatus.OK


def test_concurrency_bound_still_fetches_everything_in_order(
    httpserver: HTTPServer, feed_bytes: bytes
) -> None:
    for i in range(6):
        httpserver.expect_request(f"/f{i}").respond_with_data(feed_bytes + str(i).encode())
    urls = [httpserver.url_for(f"/f{i}") for i in range(6)]
    results = fetch_all_sync([Local(u) for u in urls], FetchOptions(concurrency=2))
    assert [r.content[-1:] if r.content else b"" for r in results] == [
        str(i).encode() for i in range(6)
    ]


@pytest.fixture
def threaded_server() -> Iterator[HTTPServer]:
    """A server answering requests in parallel (and keeping HTTP/1.1 connections alive)."""
    server = HTTPServer(host="127.0.0.1", threaded=True)
    server.start()
    yield server
    server.clear()
    server.stop()


def test_no_more_than_per_host_requests_reach_one_site_at_once(
    threaded_server: HTTPServer, feed_bytes: bytes
) -> None:
    lock = threading.Lock()
    in_flight = peak = 0

    def handler(request: Request) -> Response:
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        time.sleep(0.05)
        with lock:
            in_flight -= 1
        return Response(feed_bytes)

    threaded_server.expect_request("/feed").respond_with_handler(handler)
    urls = [threaded_server.url_for(f"/feed?n={i}") for i in range(12)]
    results = fetch_all_sync([Local(u) for u in urls], FetchOptions(concurrency=10, per_host=3))
    assert [r.status for r in results] == [FetchStatus.OK] * 12
    assert 1 <= peak <= 3


class _NotModified(http.server.BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive (werkzeug's test server closes every connection)."""

    protocol_version = "HTTP/1.1"
    clients: ClassVar[set[int]] = set()

    def do_GET(self) -> None:
        self.clients.add(self.client_address[1])
        self.send_response(304)
        self.send_header("ETag", '"v1"')
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_unchanged_feeds_of_one_site_share_a_kept_alive_connection() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotModified)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        requests = [Local(f"{base}/feed{i}", etag='"v1"') for i in range(5)]
        results = fetch_all_sync(requests, FetchOptions(per_host=1))
    finally:
        server.shutdown()
        server.server_close()
    assert [r.status for r in results] == [FetchStatus.NOT_MODIFIED] * 5
    assert len(_NotModified.clients) == 1


def test_a_stop_abandons_slow_downloads_without_waiting_for_their_timeout(
    httpserver: HTTPServer, feed_bytes: bytes, silent_site: str
) -> None:
    httpserver.expect_request("/fast").respond_with_data(feed_bytes)
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    started = time.monotonic()
    fast, hung = fetch_all_sync(
        [Local(httpserver.url_for("/fast")), Local(f"{silent_site}/feed")],
        FetchOptions(timeout=60),
        stop=stop.is_set,
    )
    # Only a stop can end this batch before the 60 s timeout.
    assert time.monotonic() - started < 30
    assert fast.status is FetchStatus.OK
    assert fast.content == feed_bytes
    assert hung.status is FetchStatus.STOPPED
    assert hung.url == f"{silent_site}/feed"


def test_a_stop_that_never_comes_changes_nothing(httpserver: HTTPServer, feed_bytes: bytes) -> None:
    httpserver.expect_request("/feed").respond_with_data(feed_bytes)
    [result] = fetch_all_sync([Local(httpserver.url_for("/feed"))], stop=lambda: False)
    assert result.status is FetchStatus.OK


def test_results_can_leave_the_bodies_to_the_callback(
    httpserver: HTTPServer, feed_bytes: bytes
) -> None:
    httpserver.expect_request("/feed").respond_with_data(feed_bytes)
    seen: list[int] = []
    [result] = fetch_all_sync(
        [Local(httpserver.url_for("/feed"))],
        on_result=lambda r: seen.append(len(r.content or b"")),
        keep_content=False,
    )
    assert seen == [len(feed_bytes)]  # the callback had the body...
    assert result.status is FetchStatus.OK
    assert result.content is None  # ...the run's results do not keep it


def test_no_download_starts_while_paused(httpserver: HTTPServer, feed_bytes: bytes) -> None:
    httpserver.expect_request("/feed").respond_with_data(feed_bytes)
    go = threading.Event()
    got: list[list[FetchResult]] = []
    worker = threading.Thread(
        target=lambda: got.append(
            fetch_all_sync(
                [Local(httpserver.url_for("/feed")) for _ in range(3)],
                pause=lambda: not go.is_set(),
            )
        )
    )
    worker.start()
    time.sleep(0.5)  # a paused run waits, however long this is
    assert httpserver.log == []
    go.set()
    worker.join(30)
    assert [r.status for r in got[0]] == [FetchStatus.OK] * 3
