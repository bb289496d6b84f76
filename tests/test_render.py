"""Rendering an issue: the email (HTML + text), personalization, the web page and the subject."""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import replace
from datetime import UTC, datetime
from html.parser import HTMLParser

import pytest

from digest.errors import RenderError
from digest.models import AlsoCovered, IssueContent, IssueEntry, IssueSection, RenderedIssue
from digest.render import (
    RenderCache,
    format_subject,
    page_style_csp_source,
    personalize,
    render_issue,
    render_page,
)

# --------------------------------------------------------------------------- helpers


class Doc(HTMLParser):
    """What a reader (or a link checker) sees in an HTML document."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[tuple[str, str]] = []
        self.images: list[dict[str, str | None]] = []
        self.headings: dict[str, list[str]] = {"h1": [], "h2": [], "h3": []}
        self.tags: list[str] = []
        self.chunks: list[str] = []
        self._href: str | None = None
        self._link_text: list[str] = []
        self._heading: str | None = None
        self._heading_text: list[str] = []
        self.html_lang: str | None = None
        self._raw = False
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self._break(tag)
        self._raw = tag in ("style", "title")
        a = dict(attrs)
        if tag == "html":
            self.html_lang = a.get("lang")
        if tag == "a":
            self._href = a.get("href") or ""
            self._link_text = []
        if tag == "img":
            self.images.append(a)
        if tag in self.headings:
            self._heading, self._heading_text = tag, []

    def _break(self, tag: str) -> None:
        # Block elements separate words; inline ones (a link in a sentence) do not.
        if tag not in ("a", "b", "i", "em", "strong", "span"):
            self.chunks.append(" ")

    def handle_endtag(self, tag: str) -> None:
        self._raw = False
        self._break(tag)
        if tag == "a" and self._href is not None:
            self.links.append((self._href, "".join(self._link_text).strip()))
            self._href = None
        if tag == self._heading:
            self.headings[tag].append(" ".join("".join(self._heading_text).split()))
            self._heading = None

    def handle_data(self, data: str) -> None:
        if self.tags and self.tags[-1] in ("style", "title") and self._raw:
            return
        self.chunks.append(data)
        if self._href is not None:
            self._link_text.append(data)
        if self._heading is not None:
            self._heading_text.append(data)

    @property
    def text(self) -> str:
        # Collapse ASCII whitespace only: French puts a no-break space before a colon.
        return re.sub(r"[ \t\r\n\f]+", " ", "".join(self.chunks)).strip()

    def href_of(self, label: str) -> str:
        found = [h for h, t in self.links if t == label]
        assert len(found) == 1, f"{label!r} linked {len(found)} times in {self.links}"
        return found[0]


HOSTILE = '<script>alert("x")</script> Cloud & co'
WHEN = datetime(2025, 11, 4, 9, 30, tzinfo=UTC)


def entry(item_id: int, topic: str, title: str, **kw: object) -> IssueEntry:
    values: dict[str, object] = {
        "item_id": item_id,
        "url": f"https://news.example.org/articles/{item_id}?utm=1&x=2",
        "title": title,
        "source": "Example News",
        "published": WHEN,
        "summary": f"Summary of {title}.",
        "topic_id": topic,
    }
    values.update(kw)
    return IssueEntry(**values)  # type: ignore[arg-type]


def issue(language: str = "en", **kw: object) -> IssueContent:
    cloud = IssueSection(
        "sovereign_cloud",
        "Sovereign cloud",
        (
            entry(
                1,
                "sovereign_cloud",
                "A page is turning for the French sovereign cloud",
                summary_engine="llm:mistral-small",
                also=(
                    AlsoCovered("Les Echos", "https://www.lesechos.fr/tech/cloud-123"),
                    AlsoCovered("L'Usine Digitale", "https://www.usine-digitale.fr/a/456"),
                ),
            ),
            entry(2, "sovereign_cloud", HOSTILE),
        ),
        titles=(("fr", "Cloud souverain"),),
    )
    privacy = IssueSection(
        "data_protection",
        "Data protection",
        (entry(3, "data_protection", "La CNIL sanctionne un courtier en données"),),
        titles=(("fr", "Protection des données"),),
    )
    values: dict[str, object] = {
        "number": 7,
        "title": "Veille",
        "language": language,
        "timezone": "Europe/Paris",
        "created": datetime(2025, 11, 10, 7, 0, tzinfo=UTC),
        "period_start": datetime(2025, 11, 3, 7, 0, tzinfo=UTC),
        "period_end": datetime(2025, 11, 10, 7, 0, tzinfo=UTC),
        "sections": (cloud, privacy),
        "base_url": "https://digest.example.org",
    }
    values.update(kw)
    return IssueContent(**values)  # type: ignore[arg-type]


def all_titles(content: IssueContent) -> list[str]:
    return [e.title for s in content.sections for e in s.entries]


def reader(rendered: RenderedIssue, **kw: str | None) -> tuple[str, str]:
    values: dict[str, str | None] = {
        "name": "Ada",
        "unsubscribe_url": "https://digest.example.org/unsubscribe/tok?a=1&b=2",
        "preferences_url": "https://digest.example.org/preferences/tok",
    }
    values.update(kw)
    return personalize(rendered, **values)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- the email


def test_each_entry_title_links_to_its_url() -> None:
    content = issue()
    html, _ = reader(render_issue(content))
    doc = Doc(html)
    for s in content.sections:
        for e in s.entries:
            assert doc.href_of(e.title) == e.url


def test_sections_follow_the_issue_order_with_source_and_date() -> None:
    doc = Doc(reader(render_issue(issue()))[0])
    assert doc.headings["h2"] == ["Sovereign cloud", "Data protection"]
    assert doc.headings["h3"] == all_titles(issue())
    assert "Example News (news.example.org) · Nov 4, 2025" in doc.text


def test_hostile_title_is_shown_as_text_never_as_markup() -> None:
    html, text = reader(render_issue(issue()))
    assert HOSTILE in Doc(html).headings["h3"]
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; Cloud &amp; co" in html
    assert "<script" not in html.lower()
    assert "script>alert" in text  # readable in the text part, yet not a tag opener
    assert "<script" not in text.lower()


def test_no_javascript_url_or_word_survives_anywhere() -> None:
    bad = issue(
        sections=(
            IssueSection(
                "sovereign_cloud",
                "Sovereign cloud",
                (
                    entry(
                        1,
                        "sovereign_cloud",
                        "Clickjacking trick",
                        url="javascript:alert(document.cookie)",
                        summary="It hides JavaScript: code in a link. JAVASCRIPT:alert(1)",
                        also=(AlsoCovered("Evil", "JavaScript:alert(2)"),),
                    ),
                ),
            ),
        )
    )
    html, text = reader(render_issue(bad))
    page = render_page(bad)
    for out in (html, text, page):
        assert "javascript:" not in out.lower()
        assert "<script" not in out.lower()
    doc = Doc(html)
    assert "Clickjacking trick" in doc.headings["h3"]  # shown, just not linked
    assert all(label not in ("Clickjacking trick", "Evil") for _, label in doc.links)
    assert "It hides JavaScript: code in a link." in doc.text  # the entity reads as a colon


def test_every_link_is_absolute_web_or_mailto_and_images_have_alt() -> None:
    content = issue(
        sections=(
            IssueSection(
                "t",
                "T",
                (
                    entry(1, "t", "Relative", url="/articles/1"),
                    entry(2, "t", "Data", url="data:text/html,<b>x</b>"),
                    entry(3, "t", "Spaced", url=' https://ex.org/a b{c}"<d> '),
                    entry(4, "t", "Unicode host", url="https://bücher.example/ü"),
                ),
            ),
        )
    )
    html, _ = reader(render_issue(content), unsubscribe_url="mailto:leave@example.org")
    doc = Doc(html)
    assert doc.links
    for href, _label in doc.links:
        assert re.match(r"^(https?://[^/\s]+|mailto:)", href), href
        assert not re.search(r"[\s\"<>{}]", href), href
    assert doc.href_of("Spaced") == "https://ex.org/a%20b%7Bc%7D%22%3Cd%3E"
    assert doc.href_of("Unicode host") == "https://xn--bcher-kva.example/%C3%BC"
    assert "Relative" not in [label for _, label in doc.links]
    assert all(img.get("alt") is not None for img in doc.images)


def test_also_covered_lists_the_other_sources_as_links() -> None:
    doc = Doc(reader(render_issue(issue()))[0])
    assert "Also covered by: Les Echos, L'Usine Digitale" in doc.text
    assert doc.href_of("Les Echos") == "https://www.lesechos.fr/tech/cloud-123"


def test_machine_written_mark_only_for_llm_summaries_and_can_be_turned_off() -> None:
    html, text = reader(render_issue(issue()))
    assert Doc(html).text.count("Summary written by a machine") == 1
    assert text.count("Summary written by a machine") == 1
    html, text = reader(render_issue(issue(), mark_machine_written=False))
    assert "machine" not in html
    assert "machine" not in text


def test_english_header_period_count_and_footer() -> None:
    doc = Doc(reader(render_issue(issue()))[0])
    assert doc.html_lang == "en"
    assert doc.headings["h1"] == ["Veille"]
    assert "Issue #7 · November 3 – 10, 2025 · 3 articles" in doc.text
    assert "Sovereign cloud (2 articles)" in doc.text
    assert "Data protection (1 article)" in doc.text
    assert "You receive this because you subscribed to Veille." in doc.text
    assert doc.href_of("Read this issue in your browser") == "https://digest.example.org/issues/7"


def test_french_words_titles_and_dates() -> None:
    doc = Doc(reader(render_issue(issue("fr")))[0])
    assert doc.html_lang == "fr"
    assert doc.headings["h2"] == ["Cloud souverain", "Protection des données"]
    assert "Numéro 7 · du 3 au 10 novembre 2025 · 3 articles" in doc.text
    assert "Example News (news.example.org) · 4 nov. 2025" in doc.text
    assert "Également traité par\u00a0: Les Echos" in doc.text
    assert "Résumé rédigé par une machine" in doc.text
    assert "Bonjour Ada," in doc.text
    assert doc.href_of("Se désabonner").startswith("https://digest.example.org/unsubscribe/")
    assert doc.href_of("Gérer vos préférences") == "https://digest.example.org/preferences/tok"


def test_french_plural_and_first_of_month() -> None:
    one = replace(
        issue("fr"),
        sections=(issue().sections[1],),
        period_start=datetime(2025, 11, 1, 12, tzinfo=UTC),
        period_end=datetime(2025, 12, 2, 12, tzinfo=UTC),
    )
    assert (
        "du 1er novembre au 2 décembre 2025 · 1 article" in Doc(reader(render_issue(one))[0]).text
    )


def test_language_argument_overrides_the_words_not_the_content() -> None:
    doc = Doc(reader(render_issue(issue("fr"), language="en"))[0])
    assert "Issue #7" in doc.text
    assert "La CNIL sanctionne un courtier en données" in doc.headings["h3"]
    assert doc.headings["h2"] == ["Sovereign cloud", "Data protection"]


def test_dates_are_shown_in_the_digest_timezone() -> None:
    late = replace(
        issue(),
        sections=(
            IssueSection(
                "t", "T", (entry(1, "t", "Late", published=datetime(2025, 11, 4, 23, 30)),)
            ),
        ),
    )
    assert (
        "Example News (news.example.org) · Nov 5, 2025" in Doc(reader(render_issue(late))[0]).text
    )


def test_a_topic_subset_limits_the_sections() -> None:
    rendered = render_issue(issue(), topics=["data_protection", "no_longer_configured"])
    assert rendered.topics == ("data_protection",)
    html, text = reader(rendered)
    assert Doc(html).headings["h2"] == ["Data protection"]
    assert "Sovereign cloud" not in html
    assert "Sovereign cloud" not in text
    assert "1 article" in Doc(html).text
    assert render_issue(issue(), topics="data_protection").topics == ("data_protection",)


def test_nobody_gets_an_empty_issue() -> None:
    with pytest.raises(RenderError, match=r"issue #7 has no entries for topics elsewhere"):
        render_issue(issue(), topics=["elsewhere"])


def test_unsupported_language_and_bad_timezone_are_one_line_errors() -> None:
    with pytest.raises(RenderError, match=r"language 'de' is not supported"):
        render_issue(issue(), language="de")
    with pytest.raises(RenderError, match=r"unknown timezone 'Mars/Olympus'"):
        render_issue(issue(timezone="Mars/Olympus"))


# --------------------------------------------------------------------------- personalize


def test_personalize_fills_and_escapes_the_personal_bits() -> None:
    rendered = render_issue(issue())
    assert "{{{unsubscribe_url}}}" in rendered.html
    assert "{{{greeting}}}" in rendered.text
    url = "https://digest.example.org/unsubscribe/t0k?x=1&y='2'"
    html, text = reader(rendered, name="Zoé <b>&\nCo", unsubscribe_url=url)
    doc = Doc(html)
    assert "Hello Zoé <b>& Co," in doc.text
    assert "Hello Zoé &lt;b&gt;&amp; Co," in html
    assert doc.href_of("Unsubscribe") == url
    assert text.startswith("Hello Zoé <b>& Co,\n")
    assert f"Unsubscribe:\n{url}\n" in text
    assert "{{{" not in html
    assert "{{{" not in text


def test_without_a_name_the_greeting_is_plain() -> None:
    html, text = reader(render_issue(issue("fr")), name=None)
    assert "Bonjour," in Doc(html).text
    assert text.startswith("Bonjour,\n")


def test_preferences_link_appears_only_when_given() -> None:
    rendered = render_issue(issue())
    html, text = reader(rendered, preferences_url=None)
    assert "preferences" not in html.lower()
    assert "preferences" not in text.lower()
    html, text = reader(rendered)
    assert Doc(html).href_of("Manage your preferences").endswith("/preferences/tok")
    assert "Manage your preferences:\nhttps://digest.example.org/preferences/tok\n" in text


def test_content_cannot_forge_a_placeholder() -> None:
    forged = "{{{unsubscribe_url}}} {{{#preferences_url}}}"
    content = replace(
        issue(), sections=(IssueSection("t", "T", (entry(1, "t", forged, summary=forged),)),)
    )
    html, text = reader(render_issue(content), unsubscribe_url="https://u.example/SECRET")
    assert html.count("SECRET") == 1
    assert text.count("SECRET") == 1
    assert forged in Doc(html).headings["h3"]


@pytest.mark.parametrize("url", ["javascript:alert(1)", "/unsubscribe/x", "https://a b"])
def test_personalize_refuses_a_non_web_unsubscribe_url(url: str) -> None:
    with pytest.raises(RenderError, match="unsubscribe_url must be an absolute"):
        reader(render_issue(issue()), unsubscribe_url=url)


def test_render_cache_compiles_each_variant_once() -> None:
    cache = RenderCache(subject_format="{title} {number}")
    content = issue()
    first = cache.get(content, language="fr", topics=["data_protection"])
    again = cache.get(content, language="fr-FR", topics=["data_protection", "gone"])
    assert again is first
    everything = cache.get(content, topics=None)
    assert everything.topics == ("sovereign_cloud", "data_protection")
    assert cache.get(content, language="en") is everything
    assert (cache.misses, cache.hits, len(cache)) == (2, 2, 2)
    assert first.subject == "Veille 7"
    assert first.language == "fr"


def test_render_cache_is_bounded() -> None:
    cache = RenderCache(maxsize=1)
    cache.get(issue(), language="en")
    cache.get(issue(), language="fr")
    assert len(cache) == 1


# --------------------------------------------------------------------------- text part


def test_text_part_has_every_title_and_url_wrapped_at_72_columns() -> None:
    long_title = " ".join(["sovereignty"] * 15)
    content = replace(
        issue(),
        sections=(*issue().sections, IssueSection("t", "Long", (entry(9, "t", long_title),))),
    )
    _, text = reader(render_issue(content))
    lines = text.splitlines()
    stripped = [line.strip() for line in lines]
    for e in (e for s in content.sections for e in s.entries):
        assert e.url in stripped, f"{e.url} not on its own line"
        if e.title != long_title:
            assert e.title in text.replace("\u200b", "")
    assert "* " + long_title in " ".join(text.split())
    for url in ("https://www.lesechos.fr/tech/cloud-123", "https://digest.example.org/issues/7"):
        assert url in stripped
    for line in lines:
        assert len(line) <= 72 or re.fullmatch(r"\s*\S+", line), line
    assert stripped.index("Sovereign cloud") < stripped.index("Data protection")


# --------------------------------------------------------------------------- page and subject


def test_web_page_has_the_content_and_nothing_personal() -> None:
    page = render_page(issue("fr"))
    doc = Doc(page)
    assert page.startswith("<!doctype html>")
    assert doc.html_lang == "fr"
    assert doc.headings["h3"] == all_titles(issue())
    assert "{{{" not in page
    assert "désabonner" not in page.lower()
    assert "Bonjour" not in page
    assert ' style="' not in page  # only classes: a strict CSP needs no 'unsafe-inline'
    assert doc.href_of("Tous les numéros") == "https://digest.example.org/"


def test_page_style_hash_matches_its_inline_style() -> None:
    css = re.search(r"<style>(.*?)</style>", render_page(issue()), re.S)
    assert css is not None
    digest = base64.b64encode(hashlib.sha256(css.group(1).encode()).digest()).decode()
    assert page_style_csp_source() == f"'sha256-{digest}'"


def test_subject_uses_title_number_and_localized_date() -> None:
    assert render_issue(issue()).subject == "Veille #7 — November 10, 2025"
    assert format_subject("{date} · {title}", issue(), "fr") == "10 novembre 2025 · Veille"
    assert format_subject("{title}", issue(title="Two\r\nlines")) == "Two lines"


@pytest.mark.parametrize(
    "fmt",
    [
        "{title} {who}",
        "{title.__class__}",
        "{0}",
        "{title",
        "{number:{title.__class__}}",
        "{title!r}",
        "{number:>1000000000000}",
    ],
)
def test_subject_refuses_other_fields(fmt: str) -> None:
    with pytest.raises(RenderError, match="subject format"):
        format_subject(fmt, issue())


def test_email_loads_nothing_from_outside() -> None:
    html, _ = reader(render_issue(issue()))
    doc = Doc(html)
    assert "link" not in doc.tags  # no web fonts (mjml's default Google Fonts are turned off)
    assert "img" not in doc.tags  # no pictures, so no tracking pixel either
    assert "@import" not in html
    assert " src=" not in html
