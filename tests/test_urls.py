"""canonical_url: one spelling per article, idempotent, never raises, no trackers survive."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from digest.urls import InvalidURL, canonical_url, is_tracking_param, url_problem, web_url


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("HTTP://Example.COM/a/b", "https://example.com/a/b"),
        ("http://example.com:80/a", "https://example.com/a"),
        ("https://example.com:443/a", "https://example.com/a"),
        ("https://example.com:8443/a", "https://example.com:8443/a"),
        ("https://example.com/a/#section-2", "https://example.com/a"),
        ("https://example.com", "https://example.com/"),
        ("https://example.com/", "https://example.com/"),
        ("https://example.com/a/b/", "https://example.com/a/b"),
        ("https://example.com/a/./b/../c", "https://example.com/a/c"),
        ("https://example.com/?b=2&a=1", "https://example.com/?a=1&b=2"),
        ("https://example.com/%7euser/%c3%a9t%C3%A9", "https://example.com/~user/%C3%A9t%C3%A9"),
        ("https://example.com/été", "https://example.com/%C3%A9t%C3%A9"),
        ("https://bücher.example/", "https://xn--bcher-kva.example/"),
        ("  https://example.com/a  ", "https://example.com/a"),
        ("//example.com/a", "https://example.com/a"),
    ],
)
def test_canonical_form(raw: str, expected: str) -> None:
    assert canonical_url(raw) == expected


def test_http_and_https_copies_of_one_article_compare_equal() -> None:
    a = "http://www.lemonde.fr/pixels/article/2024/cloud.html?utm_source=rss&xtor=RSS-3208"
    b = "https://WWW.lemonde.fr/pixels/article/2024/cloud.html#comments"
    assert canonical_url(a) == canonical_url(b)


@pytest.mark.parametrize(
    "param",
    [
        "utm_source=x",
        "UTM_Medium=y",
        "fbclid=abc",
        "gclid=1",
        "dclid=1",
        "msclkid=1",
        "mc_cid=1",
        "mc_eid=2",
        "_hsenc=p2",
        "_hsmi=3",
        "igshid=4",
        "ref_src=twsrc",
        "yclid=5",
        "at_medium=rss",
        "xtor=RSS-1",
        "utm%5Fcampaign=z",
    ],
)
def test_tracking_parameters_are_dropped(param: str) -> None:
    assert canonical_url(f"https://example.com/a?id=7&{param}") == "https://example.com/a?id=7"


def test_meaningful_parameters_are_kept() -> None:
    assert canonical_url("https://example.com/view?p=123&lang=fr") == (
        "https://example.com/view?lang=fr&p=123"
    )


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "not a url",
        "mailto:a@example.com",
        "javascript:alert(1)",
        "http://",
        "http://[::1",
    ],
)
def test_non_urls_come_back_stripped(text: str) -> None:
    assert canonical_url(f" {text} ") == text.strip()


_trackers = st.sampled_from(
    ["utm_source", "utm_x", "fbclid", "gclid", "mc_cid", "MC_EID", "_hsenc"]
)
_names = st.text(alphabet="abcdefghij_%+2F", min_size=1, max_size=8)
_values = st.text(max_size=10).map(lambda v: v.replace("&", "").replace("#", ""))


@st.composite
def urls(draw: st.DrawFn) -> str:
    scheme = draw(st.sampled_from(["http", "https", "HTTP", "Https"]))
    host = draw(st.sampled_from(["example.com", "EXAMPLE.org", "bücher.de", "[::1]", "a.b.c"]))
    port = draw(st.sampled_from(["", ":80", ":443", ":8080", ":0443"]))
    path = draw(st.text(max_size=20).map(lambda p: p.replace("?", "").replace("#", "")))
    params = draw(st.lists(st.tuples(st.one_of(_trackers, _names), _values), max_size=5))
    query = "&".join(f"{k}={v}" for k, v in params)
    frag = draw(st.text(max_size=5))
    return f"{scheme}://{host}{port}/{path}?{query}#{frag}"


@given(st.one_of(urls(), st.text()))
@settings(max_examples=400)
def test_canonical_url_is_idempotent_and_never_raises(url: str) -> None:
    once = canonical_url(url)
    assert canonical_url(once) == once


@given(urls())
@settings(max_examples=300)
def test_no_tracking_parameter_survives(url: str) -> None:
    result = canonical_url(url)
    if result.startswith("https://"):
        query = urlsplit(result).query
        names = [pair.partition("=")[0] for pair in query.split("&") if pair]
        assert not any(is_tracking_param(n) for n in names)
        assert "#" not in result


def test_links_lose_tracking_parameters_but_keep_their_spelling() -> None:
    from digest.urls import strip_tracking

    url = "http://Example.org/a/?utm_source=rss&id=3&fbclid=x&b=2#frag"
    assert strip_tracking(url) == "http://Example.org/a/?id=3&b=2#frag"
    assert strip_tracking("https://example.org/x") == "https://example.org/x"
    assert strip_tracking("not a url [") == "not a url ["


@given(st.text())
def test_strip_tracking_never_raises(text: str) -> None:
    from digest.urls import strip_tracking

    strip_tracking(text)


# --------------------------------------------------------------------------- the edge check


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://1.2.3.04/a", "invalid IPv4 address 1.2.3.04"),
        ("http://0177.0.0.1/", "invalid IPv4 address 0177.0.0.1"),
        ("http://[v1.x]/", "invalid IPv6 address [v1.x]"),
        ("http://x:99999/", "Port out of range"),
        ("javascript:alert(1)", "not http(s) but 'javascript'"),
        ("http:///x", "no host"),
        ("http://a b/", "invalid host name 'a b'"),
        ("http://a.org/x\ty", "control characters"),
        ("", "empty"),
    ],
)
def test_web_url_refuses_what_no_client_could_request_with_a_reason(url: str, reason: str) -> None:
    with pytest.raises(InvalidURL) as info:
        web_url(url)
    assert reason in info.value.reason
    assert url_problem(url) == info.value.reason


@pytest.mark.parametrize(
    "url",
    [
        "https://example.org/a?b=1#x",
        "http://[::1]:8080/",
        "https://bücher.de/",
        "http://u:p@h.org/",
    ],
)
def test_web_url_accepts_ordinary_links(url: str) -> None:
    assert web_url(f"  {url} ") == url


def test_a_space_in_a_path_is_sent_as_percent_20_not_refused() -> None:
    assert web_url("https://x.org/a b?q=c d") == "https://x.org/a%20b?q=c%20d"


_HOSTS = st.sampled_from(
    ["example.org", "1.2.3.4", "1.2.3.04", "0177.0.0.1", "[::1]", "[v1.x]", "bücher.de", "a_b.c"]
) | st.text(max_size=12)


@given(
    st.sampled_from(["http://", "https://", "HTTP://", "ftp://", ""]),
    _HOSTS,
    st.sampled_from(["", ":80", ":0", ":99999", ":x"]),
    st.text(max_size=20),
)
@settings(max_examples=400)
def test_a_url_web_url_accepts_is_one_httpx_can_request(
    scheme: str, host: str, port: str, rest: str
) -> None:
    # The contract with the HTTP client: what passes the edge never raises httpx.InvalidURL.
    url = f"{scheme}{host}{port}/{rest}"
    if url_problem(url) is None:
        request = httpx.Request("GET", web_url(url))
        assert request.url.scheme in ("http", "https")


@given(st.one_of(st.text(max_size=60), st.text(max_size=40).map(lambda t: "http://" + t)))
@settings(max_examples=400)
def test_the_edge_check_never_raises_and_never_lets_an_invalid_url_through(text: str) -> None:
    if url_problem(text) is None:
        httpx.Request("GET", web_url(text))
