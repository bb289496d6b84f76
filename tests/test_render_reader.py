"""The reader's layer of the email: a real preheader (the lead story's first sentence, padded,
without a low-contrast hidden-text trick), a clickable table of contents, per-item language with
a marker, "view in browser" on top, the source's domain, reading time, a dark palette, and a
footer saying who it was sent to, who sends it and from where."""

from __future__ import annotations

import re
from dataclasses import replace

from digest.models import Brand, IssueEntry
from digest.render import first_sentence, lead_entry, personalize, render_issue
from test_render import Doc, issue


def email_of(content, **kw):  # type: ignore[no-untyped-def]
    rendered = render_issue(content, **kw)
    return rendered, *personalize(
        rendered,
        name="Ann",
        unsubscribe_url="https://news.example.org/unsubscribe/u.k.s",
        preferences_url=None,
        email="ann@example.org",
    )


def preheader_of(html: str) -> str:
    m = re.search(r'<div style="display:none;[^"]*"[^>]*>(.*?)</div>', html, re.S)
    assert m, "no preheader"
    return m.group(1)


def scored(content, scores: dict[int, float]):  # type: ignore[no-untyped-def]
    sections = tuple(
        replace(s, entries=tuple(replace(e, score=scores.get(e.item_id, 0.0)) for e in s.entries))
        for s in content.sections
    )
    return replace(content, sections=sections)


def test_the_preheader_is_the_lead_storys_first_sentence_padded_and_not_low_contrast() -> None:
    content = scored(issue(), {3: 5.0})
    sections = tuple(
        replace(
            s,
            entries=tuple(
                replace(e, summary="The CNIL fined a broker. It resold location data.")
                if e.item_id == 3
                else e
                for e in s.entries
            ),
        )
        for s in content.sections
    )
    _, html, _ = email_of(replace(content, sections=sections))
    pre = preheader_of(html)
    assert pre.startswith("The CNIL fined a broker.")
    assert "It resold" not in pre
    # Padded with invisible characters so clients do not pull the body in after it.
    assert pre.count("\u034f\u200c\u00a0") >= 50
    # No colour trick (white text on white is what SpamAssassin's HTML_FONT_LOW_CONTRAST scores).
    hidden = re.search(r'<div style="(display:none;[^"]*)"', html)
    assert hidden is not None
    assert "color" not in hidden.group(1)
    assert "#ffffff;line-height:1px" not in html  # mj-preview's white-on-white block is gone


def test_the_lead_is_the_pinned_story_else_the_best_scored() -> None:
    content = scored(issue(), {1: 1.0, 2: 3.0, 3: 2.0})
    lead = lead_entry(content)
    assert lead is not None
    assert lead.item_id == 2
    pinned = replace(content, lead_item_id=3)
    lead = lead_entry(pinned)
    assert lead is not None
    assert lead.item_id == 3
    # A reader whose topics leave the pinned story out gets their own best story.
    only_cloud = lead_entry(pinned, pinned.sections[:1])
    assert only_cloud is not None
    assert only_cloud.item_id == 2


def test_lead_in_the_subject() -> None:
    content = replace(scored(issue(), {3: 9.0}), lead_item_id=None)
    rendered = render_issue(content, subject_format="{title}: {lead}")
    assert rendered.subject == "Veille: La CNIL sanctionne un courtier en données"


def test_first_sentence_stops_at_the_first_full_stop_and_cuts_long_ones_at_a_word() -> None:
    assert first_sentence("Paris, Nov. 4. The rest.") == "Paris, Nov. 4."
    assert first_sentence("One. Two.") == "One."
    long = "word " * 60
    cut = first_sentence(long, limit=50)
    assert cut.endswith("…")
    assert len(cut) <= 51


def test_the_table_of_contents_links_to_each_section() -> None:
    _, html, _ = email_of(issue())
    doc = Doc(html)
    assert ("#topic-sovereign_cloud", "Sovereign cloud") in doc.links
    assert ("#topic-data_protection", "Data protection") in doc.links
    assert 'id="topic-sovereign_cloud"' in html
    assert 'id="topic-data_protection"' in html


def test_items_in_another_language_carry_lang_and_a_marker() -> None:
    content = issue()
    sections = tuple(
        replace(
            s,
            entries=tuple(
                replace(e, language="fr-FR" if e.item_id == 3 else "en") for e in s.entries
            ),
        )
        for s in content.sections
    )
    _, html, text = email_of(replace(content, sections=sections))
    assert html.count('lang="fr"') == 1
    assert re.search(r"<abbr title=\"In FR\"[^>]*>FR</abbr>", html)
    assert "[FR] La CNIL sanctionne" in text
    # In a French issue, the English items are the marked ones.
    _, html_fr, _ = email_of(replace(content, sections=sections, language="fr"))
    assert html_fr.count('lang="en"') == 2
    assert html_fr.count(">EN</abbr>") == 2


def test_view_in_browser_comes_first_when_there_is_an_online_issue() -> None:
    _, html, text = email_of(issue())
    doc = Doc(html)
    first = doc.links[0]
    assert first == ("https://digest.example.org/issues/7", "View in your browser")
    assert text.splitlines()[1] == "View in your browser: https://digest.example.org/issues/7"
    _, offline, _ = email_of(replace(issue(), base_url=None))
    assert "View in your browser" not in offline


def test_the_source_domain_and_reading_time_sit_beside_the_source_name() -> None:
    content = issue()
    first = content.sections[0]
    e: IssueEntry = replace(first.entries[0], url="https://www.lesechos.fr/x", reading_minutes=4)
    content = replace(content, sections=(replace(first, entries=(e,)), *content.sections[1:]))
    _, html, text = email_of(content)
    assert "Example News (lesechos.fr) · Nov 4, 2025 · 4 min read" in Doc(html).text
    assert "Example News (lesechos.fr) · Nov 4, 2025 · 4 min read" in text


def test_color_scheme_meta_and_a_dark_palette() -> None:
    _, html, _ = email_of(issue())
    assert '<meta name="color-scheme" content="light dark">' in html
    assert "@media (prefers-color-scheme: dark)" in html


def test_the_footer_says_to_whom_by_whom_and_from_where() -> None:
    brand = Brand(
        name="Veille Numérique SAS",
        postal_address="1 rue de la Paix, 75002 Paris, France",
        footer="Written by the editors of Veille.",
    )
    _, html, text = email_of(issue(), brand=brand)
    body = Doc(html).text
    assert "This email was sent to ann@example.org." in body
    assert "Sent by Veille Numérique SAS, 1 rue de la Paix, 75002 Paris, France." in body
    assert "Written by the editors of Veille." in body
    assert "This email was sent to ann@example.org." in text
    # Without a reader address (the archive copy), the line goes.
    rendered = render_issue(issue())
    generic, _ = personalize(
        rendered, name=None, unsubscribe_url="https://x.example/", preferences_url=None
    )
    assert "was sent to" not in generic
    assert "{{{" not in generic
