"""Cleaning: HTML -> text with paragraphs, entities, mojibake and whitespace handled, and the
boilerplate lines feeds carry dropped without losing real sentences."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from digest.summarize import clean

BOILERPLATE = ("FaLang", "Read the article", "Source : Les Echos", "Together, your Internet")


def test_paragraph_boundaries_survive_as_blank_lines() -> None:
    html = (
        "<div><p>First paragraph.</p><p>Second <b>one</b>.</p><ul><li>a</li><li>b</li></ul></div>"
    )
    assert clean.html_to_text(html) == "First paragraph.\n\nSecond one.\n\na\n\nb"


def test_br_is_a_line_break_and_double_br_a_paragraph() -> None:
    assert clean.html_to_text("one<br>two") == "one\ntwo"
    assert clean.html_to_text("one<br/><br/>two") == "one\ntwo"
    assert clean.html_to_text("one\n\n two") == "one\n\ntwo"


def test_entities_are_decoded_even_when_escaped_twice() -> None:
    assert (
        clean.html_to_text("<p>R&amp;D &eacute;t&eacute; &#8212; 5&nbsp;%</p>") == "R&D été — 5 %"
    )
    assert clean.html_to_text("&lt;p&gt;Caf&amp;eacute; &amp;amp; cr&amp;egrave;me&lt;/p&gt;") == (
        "Café & crème"
    )


def test_escaped_comments_and_cdata_are_not_text() -> None:
    assert clean.html_to_text("a &lt;![CDATA[]]&gt; b &lt;!-- hidden --&gt; c") == "a b c"


def test_mojibake_is_repaired() -> None:
    assert clean.html_to_text("<p>La donnÃ©e personnelle, câ€™est sÃ»r.</p>") == (
        "La donnée personnelle, c’est sûr."
    )


def test_scripts_styles_captions_and_code_are_not_text() -> None:
    html = (
        "<p>Kept.</p><script>alert(1)</script><style>p{}</style>"
        "<figure><img src=x alt='alt text'><figcaption>Photo: AFP</figcaption></figure>"
        "<pre>x = 1</pre><p>Also kept.</p>"
    )
    assert clean.html_to_text(html) == "Kept.\n\nAlso kept."


def test_whitespace_of_every_kind_is_normalized() -> None:
    text = clean.html_to_text("<p>  a\u00a0\u00a0b\u202f: c\u200b d\t\te  </p>")
    assert text == "a b : c d e"


@pytest.mark.parametrize(
    "line",
    [
        "Read the article",
        "Read more »",
        "Continue reading A page is turning →",
        "Lire la suite",
        "Lire l'article",
        "Lire l’article sur lemonde.fr",
        "Source : Les Echos",
        "Sources: Reuters, AFP",
        "© 2024 Le Monde. Tous droits réservés.",
        "Copyright 2023 Example Media",
        "The post Cloud Act explained appeared first on Example News.",
        "L’article Le cloud souverain est apparu en premier sur Next.",
        "Photo : Jean Dupont / AFP",
        "Crédit : Shutterstock",
        "Image: Getty Images",
        "Photo by Jane Doe on Unsplash",
        "FaLang translation system by Faboba",
        "Traduit par DeepL",
        "Share this article",
        "Partager sur Facebook",
        "Facebook Twitter LinkedIn Email",
        "Follow us on Mastodon",
        "Suivez-nous sur LinkedIn",
        "Subscribe to our newsletter",
        "Abonnez-vous à notre lettre d'information",
        "À lire aussi : le RGPD a cinq ans",
        "Advertisement",
        "12 commentaires",
        "Tags: cloud, sovereignty",
        "* * *",
    ],
)
def test_boilerplate_lines_are_dropped(line: str) -> None:
    assert clean.is_boilerplate_line(line)
    assert clean.strip_boilerplate(f"A real sentence stays.\n\n{line}") == "A real sentence stays."


@pytest.mark.parametrize(
    "line",
    [
        "Share prices fell 5% on Monday.",
        "Subscribers to the service will be migrated in March.",
        "The translation by the ministry was wrong.",
        "Related companies reported losses in the third quarter.",
        "Sources close to the ministry deny any deal with Amazon.",
        "Photographers were kept away from the summit.",
        "Le Cloud Act est une loi américaine extraterritoriale.",
    ],
)
def test_real_sentences_that_look_like_boilerplate_stay(line: str) -> None:
    assert not clean.is_boilerplate_line(line)


def test_read_more_tails_and_publisher_cuts_are_handled_inline() -> None:
    text = "The ministry confirmed the plan. Read more\n\nThe company will invest [...]"
    assert clean.strip_boilerplate(text) == (
        "The ministry confirmed the plan.\n\nThe company will invest…"
    )


def test_the_title_and_the_tagline_above_it_are_dropped() -> None:
    text = "Our site, your news\n\nA page is turning\n\nThe body starts here. It goes on."
    assert clean.strip_boilerplate(text, title="A page is turning") == (
        "The body starts here. It goes on."
    )


def test_the_seed_article_loses_all_its_boilerplate(seed: str) -> None:
    raw = seed
    title = "A page is turning for the French sovereign cloud"
    html = "".join(f"<p>{line}</p>" for line in raw.splitlines())
    for text in (clean.to_text(raw, title=title), clean.to_text(html, title=title)):
        assert text.startswith("The Cloudwatt, Orange's online data hosting service")
        assert text.endswith("playing its role as a buyer.")
        for bad in BOILERPLATE:
            assert bad not in text


def test_without_a_title_two_headings_on_top_lose_the_tagline(seed: str) -> None:
    raw = seed
    text = clean.to_text(raw)
    assert text.startswith("4A page is turning for the French sovereign cloud\n\nThe Cloudwatt")
    for bad in BOILERPLATE:
        assert bad not in text


def test_plain_text_and_html_are_told_apart() -> None:
    assert clean.looks_like_html("<p>x</p>")
    assert clean.looks_like_html("you <s>could</s> will")
    assert clean.looks_like_html("caf&eacute;")
    assert not clean.looks_like_html("if a < b and c > d then R&D")


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_html_to_text_never_raises_on_any_string(text: str) -> None:
    out = clean.html_to_text(text)
    assert "\ue000" not in out
    assert "\x00" not in out
    assert clean.strip_boilerplate(out) is not None


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(["<p>", "</p>", "<br>", "&amp;", "&lt;p&gt;", "<script>", "x", " ", "\n"]),
        max_size=30,
    )
)
def test_html_to_text_never_raises_on_tag_soup(parts: list[str]) -> None:
    assert "<p>" not in clean.to_text("".join(parts))
