"""Properties of rendering for any input a feed or a subscriber can bring (hypothesis)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from digest.models import IssueContent, IssueEntry, IssueSection
from digest.render import personalize, render_issue, safe_http_url
from test_render import Doc

# Text as feeds carry it: any printable character, including markup and placeholder look-alikes.
feed_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)),
    min_size=1,
    max_size=80,
).filter(lambda s: s.strip() != "")
hostile_text = st.one_of(
    feed_text,
    st.sampled_from(
        [
            "<script>alert(1)</script>",
            "{{{unsubscribe_url}}}",
            "{{{#preferences_url}}}",
            "]]></mj-text><mj-raw><script>",
            "javascript:alert(1)",
            "&amp; &lt; &#123;",
            "<!-- <![CDATA[ x ]]> -->",
            "nul\x00 vt\x0b ff\x0c us\x1f nonchar\ufffe",
        ]
    ),
)


def content_with(title: str, summary: str, url: str) -> IssueContent:
    when = datetime(2025, 11, 4, tzinfo=UTC)
    e = IssueEntry(1, url, title, "Source <b>", when, summary, "t")
    return IssueContent(
        7, "Digest", "en", "UTC", when, when, when, (IssueSection("t", "Topic", (e,)),)
    )


@given(st.text())
def test_safe_http_url_gives_a_clean_web_url_or_nothing(raw: str) -> None:
    url = safe_http_url(raw)
    if url is not None:
        assert re.match(r"^https?://[^/?#]+", url)
        assert not re.search(r"[\s\"<>{}\\^`|]", url)
        assert "javascript:" not in url.lower()
        assert safe_http_url(url) == url


@given(st.sampled_from(["http", "https", "HTTPS"]), st.text(max_size=40))
def test_safe_http_url_keeps_web_urls_links(scheme: str, path: str) -> None:
    url = safe_http_url(f"{scheme}://example.org/{path}")
    assert url is not None
    assert url.startswith(f"{scheme.lower()}://example.org/")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    title=hostile_text, summary=hostile_text, url=st.one_of(hostile_text, st.just("https://x.org/"))
)
def test_any_feed_text_is_shown_verbatim_and_never_becomes_markup(
    title: str, summary: str, url: str
) -> None:
    rendered = render_issue(content_with(title, summary, url))
    html, text = personalize(
        rendered, name="N", unsubscribe_url="https://u.example/UNSUB", preferences_url=None
    )
    doc = Doc(html)
    shown = doc.headings["h3"]
    visible = re.sub("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]", "", title)
    assert shown == [" ".join(visible.split())]
    assert "<script" not in html.lower()
    assert "javascript:" not in html.lower()
    assert "javascript:" not in text.lower()
    assert html.count("UNSUB") == 1
    assert text.count("UNSUB") == 1
    assert set(doc.tags) <= {
        "html", "head", "title", "meta", "style", "body", "div", "table", "tbody", "tr", "td",
        "p", "h1", "h2", "h3", "a", "br",
    }  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(name=st.one_of(st.none(), st.text(max_size=40)))
def test_personalize_greets_anyone_safely(name: str | None) -> None:
    rendered = _RENDERED
    html, text = personalize(
        rendered, name=name, unsubscribe_url="mailto:leave@example.org", preferences_url=None
    )
    visible = re.sub("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffe\uffff]", "", name or "")
    clean = " ".join(visible.split())
    expected = f"Hello {clean}," if clean else "Hello,"
    assert text.startswith(expected + "\n")
    assert expected in Doc(html).text.replace("\r", " ")


_RENDERED = render_issue(content_with("T", "S", "https://x.org/"))
