"""Full-text fetching against local servers: the article text is extracted; private, loopback,
metadata and redirected-to-private addresses are refused; size, redirects and time are capped."""

from __future__ import annotations

import asyncio
import ipaddress
import threading
import time

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from digest.errors import (
    BlockedAddressError,
    FetchError,
    FetchTimeout,
    HTTPStatusError,
    TooLargeError,
)
from digest.summarize.fulltext import FullTextRequest, address_refusal, fetch_full_texts

#: Made-up paragraphs for the tests that need *an* article page, not the seed's text.
SYNTHETIC = "\n".join(
    f"Paragraph {n} of a made-up report on regional data centres. It is long enough to read as "
    "article text, with a second sentence that says the same thing in other words."
    for n in range(1, 9)
)


def article_page(text: str = SYNTHETIC, skip_head: int = 0, skip_tail: int = 0) -> str:
    """``text`` as a web page's article, between navigation and a footer."""
    paragraphs = [p.strip() for p in text.splitlines() if p.strip()]
    body = "".join(f"<p>{p}</p>" for p in paragraphs[skip_head : len(paragraphs) - skip_tail])
    return (
        "<!doctype html><html><head><title>A page is turning</title></head><body>"
        "<nav><a href='/'>Home</a> <a href='/tech'>Tech</a> <a href='/login'>Log in</a></nav>"
        "<article><h1>A page is turning for the French sovereign cloud</h1>"
        f"{body}</article>"
        "<footer>© 2019 Example Media. All rights reserved. <a href='/privacy'>Privacy</a></footer>"
        "</body></html>"
    )


def fetch(*requests: FullTextRequest, **kwargs: float) -> dict[str, object]:
    return dict(asyncio.run(fetch_full_texts(list(requests), **kwargs)))  # type: ignore[arg-type]


def test_the_main_text_of_an_article_page_is_extracted(httpserver: HTTPServer, seed: str) -> None:
    # The seed's first two lines are headings and its last three a publisher's tail.
    httpserver.expect_request("/article").respond_with_data(
        article_page(seed, skip_head=2, skip_tail=3), content_type="text/html"
    )
    url = httpserver.url_for("/article")
    text = fetch(FullTextRequest(url, allow_private=True))[url]
    assert isinstance(text, str)
    assert "The Cloudwatt, Orange's online data hosting service" in text
    assert "In addition, the State should commit itself" in text
    assert "\n\n" in text  # paragraphs kept
    assert "Log in" not in text
    assert "All rights reserved" not in text


def test_loopback_is_refused_unless_the_feed_is_allowlisted(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/article").respond_with_data(
        article_page(), content_type="text/html"
    )
    url = httpserver.url_for("/article")
    result = fetch(FullTextRequest(url))[url]
    assert isinstance(result, BlockedAddressError)
    assert "loopback" in str(result)
    assert url in str(result)
    assert len(httpserver.log) == 0  # refused before any byte was sent


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://10.1.2.3/a", "private"),
        ("http://192.168.0.10:8080/a", "private"),
        ("http://100.64.0.1/a", "carrier-grade NAT"),
        ("http://169.254.169.254/latest/meta-data/", "cloud metadata"),
        ("http://[fd00:ec2::254]/latest/meta-data/", "cloud metadata"),
        ("http://metadata.google.internal/computeMetadata/v1/", "metadata host"),
        ("http://[::ffff:127.0.0.1]/a", "loopback"),
        ("http://0.0.0.0/a", "unspecified"),
        ("http://224.0.0.1/a", "multicast"),
        ("file:///etc/passwd", "only http and https"),
        ("ftp://example.org/a", "only http and https"),
    ],
)
def test_off_limits_addresses_are_refused(url: str, reason: str) -> None:
    result = fetch(FullTextRequest(url))[url]
    assert isinstance(result, BlockedAddressError)
    assert reason in str(result)


@pytest.mark.parametrize(
    "url", ["http://[::1", "http://host:99999/a", "http:///nohost", "not a url"]
)
def test_malformed_urls_are_failures_not_exceptions(url: str) -> None:
    assert isinstance(fetch(FullTextRequest(url))[url], FetchError)


def test_metadata_stays_refused_even_for_allowlisted_feeds() -> None:
    url = "http://169.254.169.254/latest/meta-data/iam/"
    assert isinstance(fetch(FullTextRequest(url, allow_private=True))[url], BlockedAddressError)


def test_a_redirect_to_a_refused_address_is_refused(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/moved").respond_with_data(
        "", status=302, headers={"Location": "http://169.254.169.254/latest/meta-data/"}
    )
    url = httpserver.url_for("/moved")
    result = fetch(FullTextRequest(url, allow_private=True))[url]
    assert isinstance(result, BlockedAddressError)
    assert "169.254.169.254" in str(result)


def test_a_redirect_to_another_scheme_is_refused(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/moved").respond_with_data(
        "", status=301, headers={"Location": "file:///etc/passwd"}
    )
    url = httpserver.url_for("/moved")
    assert isinstance(fetch(FullTextRequest(url, allow_private=True))[url], BlockedAddressError)


def test_redirects_are_followed_up_to_five(httpserver: HTTPServer) -> None:
    for i in range(5):
        httpserver.expect_request(f"/r{i}").respond_with_data(
            "", status=302, headers={"Location": f"/r{i + 1}"}
        )
    httpserver.expect_request("/r5").respond_with_data(article_page(), content_type="text/html")
    httpserver.expect_request("/loop").respond_with_data(
        "", status=302, headers={"Location": "/loop"}
    )
    ok, looping = httpserver.url_for("/r0"), httpserver.url_for("/loop")
    results = fetch(
        FullTextRequest(ok, allow_private=True), FullTextRequest(looping, allow_private=True)
    )
    assert isinstance(results[ok], str)
    assert isinstance(results[looping], FetchError)
    assert "more than 5 redirects" in str(results[looping])


def test_a_page_over_the_size_cap_is_refused(httpserver: HTTPServer) -> None:
    big = "<html><body>" + "<p>word word word.</p>" * 5000 + "</body></html>"
    httpserver.expect_request("/big").respond_with_data(big, content_type="text/html")

    def chunked(request: Request) -> Response:
        # No Content-Length: the cap must hold while reading.
        return Response((b"<p>x</p>" * 1000 for _ in range(20)), content_type="text/html")

    httpserver.expect_request("/stream").respond_with_handler(chunked)
    big_url, stream_url = httpserver.url_for("/big"), httpserver.url_for("/stream")
    results = fetch(
        FullTextRequest(big_url, allow_private=True),
        FullTextRequest(stream_url, allow_private=True),
        max_bytes=50_000,
    )
    assert isinstance(results[big_url], TooLargeError)
    assert isinstance(results[stream_url], TooLargeError)


def test_http_errors_timeouts_and_non_html_are_failures_not_exceptions(
    httpserver: HTTPServer,
) -> None:
    httpserver.expect_request("/gone").respond_with_data("no", status=404)
    httpserver.expect_request("/pdf").respond_with_data(b"%PDF-1.4", content_type="application/pdf")
    httpserver.expect_request("/empty").respond_with_data(
        "<html><body></body></html>", content_type="text/html"
    )

    def slow(request: Request) -> Response:
        time.sleep(1.5)
        return Response(article_page(), content_type="text/html")

    httpserver.expect_request("/slow").respond_with_handler(slow)
    urls = {name: httpserver.url_for(f"/{name}") for name in ("gone", "pdf", "empty")}
    results = fetch(*(FullTextRequest(u, allow_private=True) for u in urls.values()))
    assert isinstance(results[urls["gone"]], HTTPStatusError)
    assert "not an HTML page (application/pdf)" in str(results[urls["pdf"]])
    assert "no article text" in str(results[urls["empty"]])
    slow_url = httpserver.url_for("/slow")
    late = fetch(FullTextRequest(slow_url, allow_private=True), timeout=0.5)[slow_url]
    assert isinstance(late, FetchTimeout)


def test_at_most_n_requests_run_at_once_per_host() -> None:
    active = 0
    peak = 0
    lock = threading.Lock()
    overlapped = threading.Event()

    def handler(request: Request) -> Response:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
            if active >= 2:
                overlapped.set()
        # Hold the first request until a second one is in flight: a fixed 0.1 s was not always
        # long enough for the second to arrive on a loaded machine (peak 1). The later requests
        # still hold 0.1 s each, so a third one at once would be seen.
        overlapped.wait(30)
        time.sleep(0.1)
        with lock:
            active -= 1
        return Response(article_page(), content_type="text/html")

    server = HTTPServer(threaded=True)
    server.expect_request("/a").respond_with_handler(handler)
    server.start()
    try:
        urls = [server.url_for(f"/a?n={i}") for i in range(6)]
        results = fetch(*(FullTextRequest(u, allow_private=True) for u in urls))
    finally:
        server.clear()
        server.stop()
    assert all(isinstance(results[u], str) for u in urls)
    assert peak == 2


@pytest.mark.parametrize(
    ("address", "allowed", "allowed_if_private_ok"),
    [
        ("93.184.216.34", True, True),
        ("2606:4700:4700::1111", True, True),
        ("127.0.0.1", False, True),
        ("::1", False, True),
        ("10.0.0.1", False, True),
        ("172.16.5.4", False, True),
        ("192.168.1.1", False, True),
        ("100.64.0.1", False, True),
        ("169.254.1.1", False, True),
        ("fe80::1", False, True),
        ("fc00::1", False, True),
        ("169.254.169.254", False, False),
        ("fd00:ec2::254", False, False),
        ("224.0.0.1", False, False),
        ("ff02::1", False, False),
        ("0.0.0.0", False, False),
        ("240.0.0.1", False, False),
        ("::ffff:10.0.0.1", False, True),
        ("2002:a00:1::", False, True),  # 6to4 wrapping 10.0.0.1
    ],
)
def test_address_policy(address: str, allowed: bool, allowed_if_private_ok: bool) -> None:
    ip = ipaddress.ip_address(address)
    assert (address_refusal(ip) is None) is allowed
    assert (address_refusal(ip, allow_private=True) is None) is allowed_if_private_ok
