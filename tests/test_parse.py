"""parse_feed and parse_many: typed, sanitized items from real and hostile feed documents."""

from __future__ import annotations

import contextlib
import queue
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from xml.sax.saxutils import escape

import feedparser.api
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from digest.errors import ParseError
from digest.models import ParsedFeed
from digest.reader.parse import ParseJob, ParsePool, feedparser_module, parse_feed, parse_many
from digest.sanitize import sanitize_html

NOW = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
FEED_URL = "https://news.example.org/feed.xml"


def rss(items: str, channel: str = "", encoding: str = "utf-8") -> bytes:
    return (
        f'<?xml version="1.0" encoding="{encoding}"?>\n'
        f'<rss version="2.0"><channel><title>Example</title><link>https://news.example.org/</link>'
        f"{channel}{items}</channel></rss>"
    ).encode(encoding)


def parse(content: bytes, url: str = FEED_URL, content_type: str | None = None) -> ParsedFeed:
    return parse_feed(content, url=url, fetched_at=NOW, content_type=content_type)


def corpus(corpus_dir: Path, name: str) -> ParsedFeed:
    path = next(corpus_dir.glob(f"feeds-*/{name}"))
    return parse(path.read_bytes())


# --------------------------------------------------------------------------- dates


def test_dates_are_converted_to_utc() -> None:
    feed = parse(
        rss(
            "<item><guid>a</guid><title>A</title>"
            "<pubDate>Tue, 10 Jun 2025 04:00:00 +0200</pubDate></item>"
        )
    )
    [item] = feed.items
    assert item.published == datetime(2025, 6, 10, 2, 0, tzinfo=UTC)
    assert item.published.utcoffset() == timedelta(0)
    assert item.dated


def test_missing_date_becomes_the_first_seen_time(corpus_dir: Path) -> None:
    feed = corpus(corpus_dir, "heise-de.rss090.rdf.xml")
    assert feed.items
    assert all(i.published == NOW and not i.dated for i in feed.items)


def test_unparseable_localized_date_becomes_the_first_seen_time(corpus_dir: Path) -> None:
    feed = corpus(corpus_dir, "commitstrip-fr.rss.xml")
    assert all(i.published == NOW and not i.dated for i in feed.items)


def test_date_far_in_the_future_is_clamped_to_fetch_time() -> None:
    feed = parse(rss("<item><guid>a</guid><pubDate>Fri, 01 Jan 2100 00:00:00 GMT</pubDate></item>"))
    assert feed.items[0].published == NOW
    assert not feed.items[0].dated


def test_updated_date_is_used_when_there_is_no_published_date() -> None:
    atom = b"""<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>t</title>
    <entry><id>urn:x:1</id><title>One</title><updated>2025-03-01T12:00:00-05:00</updated>
    <link href="https://a.example/1"/></entry></feed>"""
    assert parse(atom).items[0].published == datetime(2025, 3, 1, 17, 0, tzinfo=UTC)


# --------------------------------------------------------------------------- links


@pytest.mark.parametrize(
    "name",
    [
        "insanity-industries.relative-urls.rss.xml",
        "neverwinter-arcgames.relative-urls.rss.xml",
        "qemu-blog.relative-links.atom.xml",
        "pappacoda-it.xml-base.atom.xml",
        "theregister-science.atom.xml",
        "fp-base-relative-xml-base.xml",
    ],
)
def test_relative_links_are_made_absolute(corpus_dir: Path, name: str) -> None:
    feed = corpus(corpus_dir, name)
    assert feed.items
    for item in feed.items:
        assert item.url == "" or item.url.startswith(("http://", "https://"))
        for html in (item.content_html, item.summary_html):
            for url in re.findall(r'<[a-z0-9]+\s[^>]*?\b(?:href|src)="([^"]*)"', html):
                assert url.startswith(("http://", "https://", "mailto:")), (name, url)


def test_relative_item_link_resolves_against_the_feed_url(corpus_dir: Path) -> None:
    path = corpus_dir / "feeds-real/insanity-industries.relative-urls.rss.xml"
    feed = parse(path.read_bytes(), url="https://insanity.industries/index.xml")
    assert all(i.url.startswith("https://insanity.industries/") for i in feed.items)


def test_relative_links_in_content_resolve_against_the_entry_link() -> None:
    feed = parse(
        rss(
            "<item><guid>g</guid><link>https://blog.example.com/2025/post</link>"
            "<description>&lt;a href=&quot;other&quot;&gt;x&lt;/a&gt;"
            "&lt;img src=&quot;/img/a.png&quot;&gt;</description></item>"
        ),
        url="/var/feeds/local.xml",  # a local file gives no base of its own
    )
    html = feed.items[0].summary_html
    assert 'href="https://blog.example.com/2025/other"' in html
    assert 'src="https://blog.example.com/img/a.png"' in html


def test_feedburner_orig_link_is_preferred(corpus_dir: Path) -> None:
    feed = corpus(corpus_dir, "techcrunch.rss.xml")
    item = feed.items[0]
    assert item.url.startswith("http://techcrunch.com/2011/11/02/")
    assert item.canonical_url.startswith("https://techcrunch.com/2011/11/02/")


def test_canonical_url_drops_tracking_parameters() -> None:
    feed = parse(
        rss(
            "<item><guid>g</guid>"
            "<link>http://Example.com/a/?utm_source=rss&amp;utm_medium=feed#top</link></item>"
        )
    )
    assert feed.items[0].canonical_url == "https://example.com/a"


# --------------------------------------------------------------------------- identity, text


def test_guid_falls_back_to_link_then_to_a_hash_of_title_and_date() -> None:
    feed = parse(
        rss(
            "<item><guid>id-1</guid><title>A</title></item>"
            "<item><link>https://example.com/b</link><title>B</title></item>"
            "<item><title>C</title><pubDate>Tue, 10 Jun 2025 04:00:00 GMT</pubDate></item>"
        )
    )
    a, b, c = feed.items
    assert a.guid == "id-1"
    assert b.guid == "https://example.com/b"
    assert c.guid.startswith("sha256:")
    assert (
        parse(rss("<item><title>C</title><pubDate>Tue, 10 Jun 2025 04:00:00 GMT</pubDate></item>"))
        .items[0]
        .guid
        == c.guid
    )


def test_items_without_link_get_distinct_canonical_identities() -> None:
    feed = parse(rss("<item><guid>x1</guid><title>A</title></item><item><guid>x2</guid></item>"))
    a, b = feed.items
    assert a.canonical_url != b.canonical_url
    assert a.canonical_url.startswith("urn:digest:")


def test_titles_are_plain_text() -> None:
    feed = parse(
        rss(
            "<item><guid>1</guid>"
            "<title>  &lt;b&gt;Cloud&lt;/b&gt; &amp;amp;\n  RGPD &#8217;s  </title></item>"
            "<item><guid>2</guid><title>   </title></item>"
        )
    )
    assert feed.items[0].title == "Cloud & RGPD ’s"
    assert feed.items[1].title == "(untitled)"


def test_content_is_the_longest_and_summary_is_kept_apart() -> None:
    feed = parse(
        rss(
            "<item><guid>1</guid><description>Short teaser</description>"
            '<content:encoded xmlns:content="http://purl.org/rss/1.0/modules/content/">'
            "<![CDATA[<p>The <em>full</em> article text.</p>]]></content:encoded></item>"
        )
    )
    item = feed.items[0]
    assert item.content_html == "<p>The <em>full</em> article text.</p>"
    assert item.summary_html == "Short teaser"


def test_author_is_kept() -> None:
    feed = parse(
        rss(
            '<item xmlns:dc="http://purl.org/dc/elements/1.1/"><guid>1</guid>'
            "<dc:creator>Marie Curie</dc:creator></item>"
        )
    )
    assert feed.items[0].author == "Marie Curie"


@pytest.mark.parametrize(
    ("name", "language"),
    [
        ("framablog-fr.rss.xml", "fr-fr"),
        ("la-grange-fr.atom.xml", "fr"),
        ("neverwinter-arcgames.relative-urls.rss.xml", "en-us"),
        ("xakep-ru.windows-1251.rss.xml", "ru"),
    ],
)
def test_languages_are_lowercased_codes(corpus_dir: Path, name: str, language: str) -> None:
    feed = corpus(corpus_dir, name)
    assert {i.language for i in feed.items} == {language}


# --------------------------------------------------------------------------- encodings


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("allgemeine-zeitung-de.iso-8859-1.rss.xml", "ü"),
        ("universfreebox-fr.rss092.iso-8859-1.xml", "é"),
        ("xakep-ru.windows-1251.rss.xml", "Руководители"),
        ("oren-ru.windows-1251.rss.xml", "В Бузулуке"),
        ("kc0011-cn.gb2312.rss.xml", "纪念"),
    ],
)
def test_legacy_encodings_give_readable_text(corpus_dir: Path, name: str, expected: str) -> None:
    feed = corpus(corpus_dir, name)
    text = " ".join(i.title + i.summary_html + i.content_html for i in feed.items)
    assert expected in text
    assert "\ufffd" not in " ".join(i.title for i in feed.items)


def test_charset_from_content_type_is_used() -> None:
    body = (
        '<rss version="2.0"><channel><title>t</title><item><guid>1</guid>'
        "<title>Données personnelles</title></item></channel></rss>"
    ).encode("iso-8859-1")
    feed = parse(body, content_type="application/rss+xml; charset=iso-8859-1")
    assert feed.items[0].title == "Données personnelles"


# --------------------------------------------------------------------------- not feeds


@pytest.mark.parametrize(
    "name", ["rssparser-html-document-moved.rss", "fp-illformed-empty-document.xml"]
)
def test_documents_that_are_not_feeds_raise_parse_error(corpus_dir: Path, name: str) -> None:
    with pytest.raises(ParseError, match="not a feed"):
        corpus(corpus_dir, name)


@pytest.mark.parametrize(
    "body", [b"", b"   \n", b"<!doctype html><html><body><p>Hello</p></body></html>", b"{}"]
)
def test_html_pages_and_junk_raise_parse_error_naming_the_feed(body: bytes) -> None:
    with pytest.raises(ParseError, match=re.escape(FEED_URL)):
        parse(body)


def test_bytes_are_never_opened_as_a_path(tmp_path: Path) -> None:
    secret = tmp_path / "secret.xml"
    secret.write_bytes(rss("<item><guid>leak</guid></item>"))
    with pytest.raises(ParseError):
        parse(str(secret).encode())


@given(st.binary(max_size=2000))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_parse_feed_raises_only_parse_error_on_arbitrary_bytes(data: bytes) -> None:
    with contextlib.suppress(ParseError):
        parse(data)


@given(st.text(max_size=300), st.text(max_size=300))
@settings(max_examples=150, deadline=None)
def test_arbitrary_text_in_a_feed_never_yields_script(title: str, body: str) -> None:
    doc = rss(
        f"<item><title>{escape(title)}</title><description>{escape(body)}</description></item>"
    )
    try:
        feed = parse(doc)
    except ParseError:
        return
    for item in feed.items:
        for value in (item.title, item.summary_html, item.content_html, item.guid, item.url):
            assert "<script" not in value.lower()
            assert "javascript:" not in value.lower()


def _with_each_sax_reader(doc: bytes, url: str = FEED_URL) -> list[object]:
    """The outcome of parsing ``doc`` with our buffered expat reader, then the standard one."""
    feedparser_module()  # feedparser is imported, and our reader installed, on first use
    ours = feedparser.api.PREFERRED_XML_PARSERS
    outcomes: list[object] = []
    for drivers in (ours, ["xml.sax.expatreader"]):
        feedparser.api.PREFERRED_XML_PARSERS = drivers
        try:
            outcomes.append(parse(doc, url=url))
        except ParseError as exc:
            outcomes.append(str(exc))
        finally:
            feedparser.api.PREFERRED_XML_PARSERS = ours
    return outcomes


@given(st.text(max_size=300), st.text(max_size=600))
@settings(max_examples=100, deadline=None)
def test_text_buffered_by_expat_parses_as_the_standard_reader_does(title: str, body: str) -> None:
    doc = rss(
        f"<item><title>{escape(title)}</title><guid>1</guid>"
        f"<description>{escape(body)}</description></item>"
    )
    ours, standard = _with_each_sax_reader(doc)
    assert ours == standard


def test_corpus_feeds_parse_the_same_with_expat_text_buffering(corpus_dir: Path) -> None:
    for path in sorted(corpus_dir.glob("feeds-*/*")):
        url = f"https://example.org/{path.name}"
        ours, standard = _with_each_sax_reader(path.read_bytes(), url)
        assert ours == standard, path.name


# --------------------------------------------------------------------------- sanitizer


def test_sanitizer_removes_active_content_and_keeps_structure() -> None:
    dirty = (
        '<p onclick="x()" style="position:fixed">Hi <a href="javascript:alert(1)">a</a>'
        '<a href="/rel">b</a><img src="x.png" onerror="alert(1)"></p>'
        "<script>alert(1)</script><style>p{}</style><iframe src='https://evil'></iframe>"
        "<object data='x'></object><embed src='x'><form><input></form>"
        '<img src="data:image/svg+xml;base64,AAAA">'
    )
    clean = sanitize_html(dirty, "https://site.example/posts/1")
    assert "<p>" in clean
    assert 'href="https://site.example/rel"' in clean
    assert 'src="https://site.example/posts/x.png"' in clean
    for bad in ("script", "style", "iframe", "object", "embed", "form", "onerror", "onclick"):
        assert bad not in clean
    assert "javascript" not in clean
    assert "data:" not in clean


# --------------------------------------------------------------------------- many


def test_parse_many_keeps_order_and_returns_errors_as_values(corpus_dir: Path) -> None:
    names = [
        "feeds-real/framablog-fr.rss.xml",
        "feeds-hostile/rssparser-html-document-moved.rss",
        "feeds-real/guardian-uk.rss.xml",
        "feeds-real/techcrunch.rss.xml",
    ]
    jobs = [
        ParseJob((corpus_dir / n).read_bytes(), f"https://example.org/{i}", NOW)
        for i, n in enumerate(names)
    ]
    results = parse_many(jobs, workers=2)
    assert [type(r) for r in results] == [ParsedFeed, ParseError, ParsedFeed, ParsedFeed]
    assert [r.url for r in results] == [j.url for j in jobs]
    inline = parse_many(jobs[:2])
    assert inline[0] == results[0]
    assert isinstance(inline[1], ParseError)
    assert str(inline[1]) == str(results[1])


def test_parse_pool_returns_results_in_submission_order(corpus_dir: Path) -> None:
    names = ["guardian-uk.rss.xml", "techcrunch.rss.xml", "aljazeera.rss.xml"]
    jobs = [ParseJob((corpus_dir / "feeds-real" / n).read_bytes(), n, NOW) for n in names]
    with ParsePool(workers=2) as pool:
        for job in reversed(jobs):
            pool.submit(job)
        pooled = pool.results()
    with ParsePool(workers=1) as inline:
        for job in reversed(jobs):
            inline.submit(job)
        assert inline.results() == pooled
    assert [r.url for r in pooled] == list(reversed(names))


def test_parse_pool_gives_each_outcome_by_its_submission_place(corpus_dir: Path) -> None:
    names = ["guardian-uk.rss.xml", "techcrunch.rss.xml"]
    jobs = [ParseJob((corpus_dir / "feeds-real" / n).read_bytes(), n, NOW) for n in names]
    jobs.append(ParseJob(b"<html>moved</html>", "not-a-feed", NOW))
    with ParsePool(workers=2) as pool:
        places = [pool.submit(job) for job in jobs]
        assert places == [0, 1, 2]
        last = pool.outcome(2)  # waits for that document alone
        assert pool.done(2)
        first = pool.outcome(0)
        assert pool.outcome(0) is first  # asked again: the same outcome, no second parse
        everything = pool.results()
    assert isinstance(last, ParseError)
    assert last.url == "not-a-feed"
    assert [r.url for r in everything] == [*names, "not-a-feed"]
    assert everything[0] is first
    assert everything[2] is last


def test_rss_ttl_is_reported_in_seconds() -> None:
    assert parse(rss("<item><guid>1</guid></item>", channel="<ttl>60</ttl>")).ttl == 3600.0
    assert parse(rss("<item><guid>1</guid></item>", channel="<ttl>soon</ttl>")).ttl is None
    assert parse(rss("<item><guid>1</guid></item>")).ttl is None


@pytest.mark.parametrize("workers", [1, 2], ids=["inline", "pool"])
def test_parse_pool_tells_when_each_outcome_is_ready(workers: int) -> None:
    """The store loop waits for this signal instead of polling the pool."""
    feed = b'<rss version="2.0"><channel><item><title>a</title></item></channel></rss>'
    ready: queue.SimpleQueue[int] = queue.SimpleQueue()
    with ParsePool(workers=workers) as pool:
        places = [
            pool.submit(ParseJob(body, f"job-{n}", NOW), on_done=lambda n=n: ready.put(n))
            for n, body in enumerate([feed, b"not a feed", feed])
        ]
        told = sorted(ready.get(timeout=30) for _ in places)
        assert told == places
        assert all(pool.done(place) for place in places)
        assert isinstance(pool.outcome(1), ParseError)
