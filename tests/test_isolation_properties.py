"""Issue 10, "prove it": hostile feeds, items and subscriber lists thrown at the whole pipeline
(fetch -> issue -> send) against a real local feed server and a real local SMTP server. No run
raises, every good unit is delivered, every bad one is recorded with a reason."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pytest_httpserver import HTTPServer
from sqlalchemy import select

from conftest import SMTPSink
from digest.config import parse_settings
from digest.pipeline.collect import collect
from digest.pipeline.issue import send
from digest.store import open_store, schema
from digest.store.subscribers import add_subscriber
from digest.urls import url_problem

NOW = datetime.now(UTC)
MARKER = "SecNumCloud: the ministry picks a sovereign cloud provider"
TOPICS: dict[str, Any] = {
    "sovereign_cloud": {"title": "Sovereign cloud", "include": ["SecNumCloud", "sovereign cloud"]},
}

INVALID_URLS = [
    "http://1.2.3.04/a",
    "http://0177.0.0.1/",
    "http://[v1.x]/",
    "http://[::1",
    "http://x:99999/",
    "http://exa mple.org/",
    "http://ex%41mple.org/",
    "http://xn--/",
    "https://" + "a" * 9000 + ".example/",
    "javascript:alert(1)",
    "http:///nohost",
    "http://\x00.example/",
]
GOOD_URLS = [
    "https://news.example/{n}",
    "http://news.example/a?b={n}",
    "https://bücher.example/{n}",
]
BAD_DATES = [
    "not a date",
    "Mon, 99 Foo 2026 25:61:61 +9999",
    "",
    "Fri, 31 Dec 9999 23:59:59 GMT",
    "0",
    format_datetime(NOW - timedelta(hours=3)),
]
HOSTILE_TEXT = st.text(
    alphabet=st.characters(min_codepoint=0, max_codepoint=0x2FFF, blacklist_categories=("Cs",)),
    max_size=300,
) | st.sampled_from(["&#0;", "\x00\x01\x02", "A" * 20_000, "<script>x</script>", "&#xD800;"])


@st.composite
def hostile_items(draw: st.DrawFn) -> list[dict[str, str]]:
    count = draw(st.integers(min_value=1, max_value=6))
    guids = ["dup", "dup", "x", "", "\x00"]
    items = []
    for n in range(count):
        link = draw(st.sampled_from(INVALID_URLS) | st.sampled_from(GOOD_URLS)).format(n=n)
        items.append(
            {
                # On topic or not: an on-topic bad item reaches the issue builder.
                "title": draw(st.sampled_from(["SecNumCloud ", ""])) + draw(HOSTILE_TEXT),
                "link": link,
                "guid": draw(st.sampled_from(guids) | st.text(max_size=40)),
                "date": draw(st.sampled_from(BAD_DATES)),
                "description": draw(HOSTILE_TEXT),
                "language": draw(st.sampled_from(["en", "x" * 40, "en-us-" + "abcdefgh-" * 5])),
            }
        )
    return items


def hostile_feed(items: list[dict[str, str]], encoding: str) -> bytes:
    """RSS with raw hostile values (control characters stay raw: the parser must cope)."""
    body = "".join(
        f"<item><title>{escape(i['title'])}</title><link>{escape(i['link'])}</link>"
        f"<guid isPermaLink={quoteattr('false')}>{escape(i['guid'])}</guid>"
        f"<pubDate>{escape(i['date'])}</pubDate>"
        f"<description>{escape(i['description'])}</description></item>"
        for i in items
    )
    lang = escape(items[0]["language"])
    doc = (
        f"<?xml version='1.0' encoding='{encoding}'?><rss version='2.0'><channel>"
        f"<title>Hostile</title><language>{lang}</language>{body}</channel></rss>"
    )
    return doc.encode(encoding, "replace")


def good_feed() -> bytes:
    return (
        "<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel><title>Good</title>"
        f"<item><title>{MARKER}</title><link>https://good.example/secnumcloud</link>"
        f"<guid>good-1</guid><pubDate>{format_datetime(NOW - timedelta(hours=1))}</pubDate>"
        "<description>The ministry moves its sensitive workloads to a SecNumCloud qualified "
        "provider, away from a US hyperscaler, for four years.</description></item>"
        "</channel></rss>"
    ).encode()


NAMES = st.text(
    alphabet=st.characters(
        min_codepoint=0x20, max_codepoint=0x2FFF, blacklist_categories=("Cs", "Cc")
    ),
    max_size=60,
)


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    items=hostile_items(),
    encoding=st.sampled_from(["utf-8", "iso-8859-1", "utf-16"]),
    names=st.lists(NAMES, min_size=1, max_size=3),
    also_broken=st.sampled_from(["500", "garbage", "huge-title", "none"]),
)
@pytest.mark.sqlite_only  # a fresh SQLite database per hypothesis example
def test_hostile_units_are_recorded_and_every_good_one_is_delivered(
    httpserver: HTTPServer,
    smtp_sink: SMTPSink,
    monkeypatch: pytest.MonkeyPatch,
    items: list[dict[str, str]],
    encoding: str,
    names: list[str],
    also_broken: str,
) -> None:
    monkeypatch.setenv("DIGEST_SECRET", "property-secret-" + "x" * 20)
    httpserver.clear()
    httpserver.expect_request("/good.xml").respond_with_data(
        good_feed(), content_type="application/rss+xml"
    )
    httpserver.expect_request("/hostile.xml").respond_with_data(
        hostile_feed(items, encoding), content_type=f"application/rss+xml; charset={encoding}"
    )
    broken = {
        "500": ("oops", 500),
        "garbage": ("\x00\xff not xml at all", 200),
        "huge-title": (f"<rss><channel><title>{'T' * 100_000}</title></channel></rss>", 200),
        "none": ("<rss version='2.0'><channel><title>empty</title></channel></rss>", 200),
    }[also_broken]
    httpserver.expect_request("/broken.xml").respond_with_data(broken[0], status=broken[1])
    feeds = [httpserver.url_for(p) for p in ("/hostile.xml", "/broken.xml", "/good.xml")]
    before = len(smtp_sink.received)
    with tempfile.TemporaryDirectory() as tmp:
        conf = parse_settings(
            {
                "digest": {"title": "Hostile", "window_days": 7, "max_items_per_topic": 20},
                "storage": {"url": f"sqlite:///{tmp}/p.db"},
                "fetch": {"timeout": 10.0, "parse_workers": 1, "allow_private": True},
                "delivery": {"mode": "smtp", "from": "Digest <digest@news.example.org>"},
                "smtp": {"host": smtp_sink.host, "port": smtp_sink.port, "security": "none"},
                "feeds": [{"url": u, "full_text": True} for u in feeds],
                "topics": TOPICS,
            },
            str(Path(tmp) / "p.toml"),
        )
        store = open_store(conf.storage.url)
        with store.begin() as conn:
            for i, name in enumerate(names):
                add_subscriber(conn, f"reader{i}@example.org", name=name or None)

        collected = collect(conf, store)  # never raises
        sent = send(conf, store)  # never raises

        assert collected.feeds_ok >= 1  # the good feed at least
        assert sent.issue_number == 1
        assert (sent.sent, sent.failed) == (len(names), 0)
        with store.connect() as conn:
            rows = conn.execute(
                select(schema.items.c.url, schema.items.c.failures, schema.items.c.last_error)
            ).all()
            feed_rows = conn.execute(
                select(schema.feeds.c.url, schema.feeds.c.last_error, schema.feeds.c.failures)
            ).all()
        store.close()
    # Every bad item is recorded with its reason; every stored text is storable.
    for url, failures, last_error in rows:
        if url and url_problem(url) is not None:
            pytest.fail(f"an item with an invalid link was stored as usable: {url[:80]!r}")
        if failures:
            assert last_error
        assert "\x00" not in url
    # A feed that failed says why.
    for _, last_error, failures in feed_rows:
        if failures:
            assert last_error
    # Every good subscriber got the issue, with the good feed's item in it.
    got = smtp_sink.received[before:]
    assert sorted(r.rcpt_tos[0] for r in got) == sorted(
        f"reader{i}@example.org" for i in range(len(names))
    )
    for received in got:
        body = received.message().get_body(("plain",))
        assert body is not None
        assert MARKER in body.get_content()
