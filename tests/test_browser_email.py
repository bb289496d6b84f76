"""The built email, opened in headless Chromium: fits a phone, alt text on images, safe links,
the editor's note and the pinned lead story on top, light and dark.

Screenshots land in test-artifacts/ (not committed) for a human to look at.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest

from digest.models import AlsoCovered, IssueEntry, IssueSection
from digest.render import personalize, render_issue
from test_web_helpers import ARTIFACTS, chromium, sample_issue

pytestmark = pytest.mark.browser

# Everything the page may ask the network for is refused: the email must stand on its own.
CHECKS = """() => ({
  scrollWidth: document.documentElement.scrollWidth,
  innerWidth: window.innerWidth,
  imagesWithoutAlt: [...document.images].filter(i => !i.hasAttribute('alt')).map(i => i.src),
  links: [...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href')),
  lang: document.documentElement.getAttribute('lang'),
  cardBackground: getComputedStyle(document.querySelector('.card > div, .card')).backgroundColor,
  headingColor: getComputedStyle(document.querySelector('h1')).color,
  noteBottom: document.querySelector('[role=note]').getBoundingClientRect().bottom,
  noteColor: getComputedStyle(document.querySelector('[role=note] p')).color,
  firstSectionTop: document.querySelector('h2').getBoundingClientRect().top,
  firstStory: document.querySelector('h3').textContent.trim(),
  firstStorySize: parseFloat(getComputedStyle(document.querySelector('h3')).fontSize),
  otherStorySize: parseFloat(getComputedStyle(document.querySelectorAll('h3')[1]).fontSize),
})"""


def hard_issue(language: str) -> Any:
    """The sample issue plus what breaks layouts (an unbreakable word, a long URL, accents),
    an editor's note and a pinned lead story (first in the first section, as the desk puts it)."""
    content = sample_issue(3)
    long_word = "Anticonstitutionnellement" * 4
    extra = IssueEntry(
        item_id=99,
        url="https://news.example/" + "very-long-path-segment/" * 8 + "?utm_source=x",
        title=f"Données personnelles : {long_word} et « cloud de confiance »",
        source="Le Monde informatique",
        published=content.created,
        summary=("Un résumé assez long pour tenir sur plusieurs lignes. " * 6).strip(),
        topic_id="data_protection",
        also=(AlsoCovered("LeMagIT", "https://lemagit.example/" + "x" * 120),),
        language="fr",
        reading_minutes=3,
    )
    sections = list(content.sections)
    dp = sections[1]
    sections[1] = IssueSection(dp.topic_id, dp.title, (*dp.entries, extra))
    return dataclasses.replace(
        content,
        sections=tuple(sections),
        language=language,
        note="Three stories matter this week: **start with the cloud**.",
        lead_item_id=sections[0].entries[0].item_id,
    )


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


@pytest.mark.parametrize("language", ["en", "fr"])
def test_email_fits_a_phone_has_alt_text_and_only_absolute_https_links(
    browser: Any, language: str
) -> None:
    rendered = render_issue(hard_issue(language))
    html, _text = personalize(
        rendered,
        name="Ann",
        unsubscribe_url="https://digest.example/unsubscribe/u.key.sig",
        preferences_url="https://digest.example/preferences/p.key.sig",
        email="ann@example.org",
    )
    ARTIFACTS.mkdir(exist_ok=True)
    for width, scheme in ((375, "light"), (800, "light"), (375, "dark"), (800, "dark")):
        page = browser.new_page(viewport={"width": width, "height": 900}, color_scheme=scheme)
        requested: list[str] = []

        def refuse(route: Any, _request: Any, requested: list[str] = requested) -> None:
            requested.append(route.request.url)
            route.abort()

        page.route("**/*", refuse)
        page.set_content(html, wait_until="load")
        found = page.evaluate(CHECKS)
        name = f"email-{language}-{width}" + ("-dark" if scheme == "dark" else "")
        page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
        anchors_missing = page.evaluate(
            """() => [...document.querySelectorAll('a[href^="#"]')]
                 .map(a => a.getAttribute('href').slice(1))
                 .filter(id => !document.getElementById(id))"""
        )
        page.close()

        if width == 375:
            assert found["scrollWidth"] <= found["innerWidth"], (
                f"horizontal scroll at 375 px: content is {found['scrollWidth']} px wide"
            )
        assert found["imagesWithoutAlt"] == []
        assert found["links"], "the email has no link at all"
        # Besides web and mail links, only the table of contents' anchors to its own sections.
        bad = [h for h in found["links"] if not h.startswith(("https://", "mailto:", "#topic-"))]
        assert bad == [], f"links that are not absolute https or mailto: {bad}"
        assert anchors_missing == [], f"table-of-contents links to nothing: {anchors_missing}"
        assert any(h.startswith("#topic-") for h in found["links"])
        dark = scheme == "dark"
        # The dark palette takes over (a light page otherwise): dark card, light headings.
        assert (found["cardBackground"] == "rgb(22, 27, 34)") is dark, found["cardBackground"]
        assert (found["headingColor"] == "rgb(230, 237, 243)") is dark, found["headingColor"]
        assert "https://digest.example/unsubscribe/u.key.sig" in found["links"]
        assert found["lang"] == language
        # The note on top (above the first section), then the pinned story, larger, first.
        assert found["noteBottom"] <= found["firstSectionTop"]
        assert found["firstStory"] == "A page is turning for the French sovereign cloud"
        assert found["firstStorySize"] > found["otherStorySize"]
        assert (found["noteColor"] == "rgb(230, 237, 243)") is dark, found["noteColor"]
        assert requested == [], f"the email fetched remote resources: {requested}"
