"""``[digest] languages``: only items in the languages the readers read are kept; an item whose
language cannot be told is kept; ``explain`` says when the language decided."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pytest_httpserver import HTTPServer

from conftest import run_cli
from digest.cli.app import out as stdout_console
from digest.config import Settings, load, parse_settings
from digest.errors import ConfigError
from digest.models import FeedSpec, Item
from digest.pipeline.collect import collect
from digest.pipeline.wiring import make_decider
from digest.store import open_store
from digest.store.items import iter_items, load_topic_matches
from test_pipeline import rss, settings_for

REPO = Path(__file__).resolve().parent.parent
NOW = datetime.now(UTC)

MIXED = rss(
    "Mixed",
    [
        (
            "de1",
            "Datenschutz: Behörde verhängt Bußgeld nach GDPR gegen einen Händler",
            "Die Aufsichtsbehörde hat gegen den Händler ein Bußgeld verhängt, weil er die "
            "personal data seiner Kunden zu lange gespeichert hat und die Kunden nicht "
            "informiert wurden.",
        ),
        (
            "fr1",
            "La CNIL sanctionne un commerçant pour des manquements au RGPD",
            "La Commission a infligé une amende au commerçant, qui conservait les données de "
            "ses clients bien trop longtemps et ne les en avait jamais informés.",
        ),
        (
            "en1",
            "CNIL fines a retailer for GDPR breaches",
            "The regulator fined the retailer because it kept the personal data of its "
            "customers for far too long and never told them.",
        ),
        ("short", "GDPR", ""),
    ],
)


def _kept(settings: Settings) -> dict[str, tuple[bool, str]]:
    store = open_store(settings.storage.url)
    collect(settings, store)
    with store.connect() as conn:
        out = {}
        for s in iter_items(conn):
            [dp] = [m for m in load_topic_matches(conn, s.id) if m.topic_id == "data_protection"]
            out[s.item.guid] = (dp.kept, dp.rule)
    store.close()
    return out


def test_by_default_only_french_and_english_items_are_kept(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    httpserver.expect_request("/mixed.xml").respond_with_data(
        MIXED, content_type="application/rss+xml"
    )
    settings = settings_for(tmp_path, [{"url": httpserver.url_for("/mixed.xml")}])
    assert settings.digest.languages == ["fr", "en"]
    got = _kept(settings)
    assert got["fr1"] == (True, "")
    assert got["en1"] == (True, "")
    assert got["short"] == (True, "")  # one word: the language cannot be told, so it is kept
    kept, rule = got["de1"]
    assert not kept
    assert rule.startswith("language: de (detected) is not one the readers read")
    assert "[digest] languages: en, fr" in rule


def test_an_empty_language_list_keeps_every_language(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    httpserver.expect_request("/mixed.xml").respond_with_data(
        MIXED, content_type="application/rss+xml"
    )
    settings = settings_for(
        tmp_path, [{"url": httpserver.url_for("/mixed.xml")}], digest={"languages": []}
    )
    assert all(kept for kept, _ in _kept(settings).values())


def test_a_german_reader_list_keeps_the_german_item(httpserver: HTTPServer, tmp_path: Path) -> None:
    httpserver.expect_request("/mixed.xml").respond_with_data(
        MIXED, content_type="application/rss+xml"
    )
    settings = settings_for(
        tmp_path, [{"url": httpserver.url_for("/mixed.xml")}], digest={"languages": ["de"]}
    )
    got = _kept(settings)
    assert got["de1"] == (True, "")
    assert not got["en1"][0]


@pytest.mark.parametrize("bad", [["german"], ["f"], [""], ["en-US"]])
def test_a_language_that_is_not_a_code_is_a_config_error(bad: list[str]) -> None:
    with pytest.raises(ConfigError, match=r"digest\.languages"):
        parse_settings({"digest": {"languages": bad}}, "t.toml")


def test_the_feed_declared_language_decides_a_text_too_short_to_tell() -> None:
    settings = parse_settings({"topics": {"dp": {"title": "DP", "include": ["GDPR"]}}}, "t.toml")
    decider = make_decider(settings)
    spec = FeedSpec("https://f.example/rss")
    item = Item(spec.url, "g", "https://f/1", "https://f/1", "GDPR", NOW, language="de")
    [m] = decider.decide(item, spec, "F")
    assert not m.kept
    assert m.rule.startswith("language: de")
    undeclared = Item(spec.url, "g", "https://f/1", "https://f/1", "GDPR", NOW)
    [m] = decider.decide(undeclared, spec, "F")
    assert m.kept


# --------------------------------------------------------------------------- the real item


@pytest.fixture
def heise(corpus_dir: Path, httpserver: HTTPServer, workdir: Path) -> Path:
    """The real heise feed served locally, read with the shipped topics; returns the config."""
    feed = corpus_dir / "feeds-real" / "heise-de.rss090.rdf.xml"
    httpserver.expect_request("/heise.xml").respond_with_data(
        feed.read_bytes(), content_type="application/rdf+xml"
    )
    shutil.copy(REPO / "config" / "topics.toml", workdir / "topics.toml")
    cfg = workdir / "digest.toml"
    cfg.write_text(
        f"""include = ["topics.toml"]
[storage]
url = "sqlite:///{workdir}/var/digest.db"
[fetch]
allow_private = true
parse_workers = 1
[[feeds]]
url = "{httpserver.url_for("/heise.xml")}"
name = "heise online"
""",
        encoding="utf-8",
    )
    return cfg


def _privacy_shield(settings: Settings) -> tuple[int, dict[str, Any]]:
    store = open_store(settings.storage.url)
    with store.connect() as conn:
        [stored] = [
            s for s in iter_items(conn) if s.item.title.startswith("Privacy Shield: EU-Daten")
        ]
        matches = {m.topic_id: m for m in load_topic_matches(conn, stored.id)}
    store.close()
    return stored.id, matches


def test_the_real_german_heise_item_stays_out_of_a_french_and_english_issue(
    heise: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load(heise)
    assert settings.digest.languages == ["fr", "en"]
    counts = collect(settings, open_store(settings.storage.url))
    assert counts.items_new > 0
    item_id, matches = _privacy_shield(settings)
    dp = matches["data_protection"]
    assert not dp.kept
    assert dp.rule.startswith("language: de (detected)")
    # The topic alone would keep it (tests/test_topics_corpus.py): the language decided.
    assert dp.score >= 3
    monkeypatch.setattr(stdout_console, "_width", 200)
    code, stdout, _ = run_cli(capsys, "--config", str(heise), "explain", str(item_id))
    assert code == 0
    assert "decided by a rule before the topics: language: de (detected)" in stdout
    assert "data_protection (Data protection): dropped" in stdout


def test_the_real_german_heise_item_is_kept_for_readers_of_german(heise: Path) -> None:
    heise.write_text(
        heise.read_text(encoding="utf-8") + '[digest]\nlanguages = ["fr", "en", "de"]\n',
        encoding="utf-8",
    )
    settings = load(heise)
    collect(settings, open_store(settings.storage.url))
    _, matches = _privacy_shield(settings)
    assert matches["data_protection"].kept
    assert not matches["data_protection"].rule


_DECIDER = make_decider(
    parse_settings(
        {
            "filters": {"block": ["casino", "url:*/ads/*"]},
            "feeds": [{"url": "https://f.example/rss", "include": ["cloud"]}],
            "topics": {"dp": {"title": "DP", "include": ["GDPR", "cloud"]}},
        },
        "t.toml",
    )
)


@settings(max_examples=80, deadline=None)
@given(
    title=st.text(max_size=80),
    html=st.text(max_size=300),
    declared=st.one_of(st.none(), st.text(max_size=12)),
)
def test_a_decision_never_fails_whatever_the_feed_sends(
    title: str, html: str, declared: str | None
) -> None:
    spec = FeedSpec("https://f.example/rss", include=("cloud",))
    item = Item(
        spec.url,
        "g",
        "https://x/1",
        "https://x/1",
        "GDPR " + title,
        NOW,
        content_html=html,
        language=declared,
    )
    [m] = _DECIDER.decide(item, spec, "F", explain=True)
    assert m.kept == (not m.rule and m.score >= 1.0)


# --------------------------------------------------------------------------- shortcuts


def _script_by_counting(text: str) -> str | None:
    """Every script's letters counted: what ``dominant_script``'s one-scan shortcut must equal."""
    from collections import Counter

    from digest.summarize.language import _SCRIPTS

    counts = Counter({name: len(rx.findall(text)) for name, rx in _SCRIPTS})
    name, n = counts.most_common(1)[0]
    if n == 0:
        return None
    return "kana" if name == "han" and counts["kana"] else name


SCRIPT_TEXT = st.text(
    alphabet=st.sampled_from(
        list("abcdeéèàç XYZ.,;:'’-0123456789\n")
        + list("привет мир")
        + list("مرحبا")
        + list("日本語のテキスト")
        + list("ελληνικά")
        + list("한국어")
        + list("हिन्दी")
        + list("שלום")
    ),
    max_size=80,
)
#: Sentences in the languages the function-word shortcuts know, and a few they do not.
SENTENCES = [
    "The regulator fined the retailer for keeping customer data too long.",
    "La CNIL a sanctionné le commerçant qui gardait les données de ses clients.",
    "Die Behörde hat gegen den Händler ein Bußgeld verhängt, und die Kunden sind nicht froh.",
    "El regulador multó a la empresa por los datos de sus clientes y no se disculpó.",
    "Il garante ha multato la società per i dati dei clienti che non sono stati protetti.",
    "O regulador multou a empresa por causa dos dados dos clientes, não é a primeira vez.",
    "De toezichthouder heeft het bedrijf een boete gegeven voor het bewaren van gegevens.",
    "Tietosuojavaltuutettu määräsi yhtiölle sakon asiakastietojen säilyttämisestä.",
    "cloud souverain SecNumCloud GDPR",
    "Привет мир",
]
DECLARED = st.sampled_from([None, "", "fr", "en", "en-US", "fr_FR", "de", "es", "ru", "xx", "?"])
READ = st.sampled_from(
    [frozenset({"fr", "en"}), frozenset({"fr", "en", "de"}), frozenset({"fr"}), frozenset({"en"})]
)


@settings(max_examples=400, deadline=None)
@given(SCRIPT_TEXT)
def test_the_script_shortcut_names_the_script_that_counting_every_letter_names(text: str) -> None:
    from digest.summarize.language import dominant_script

    assert dominant_script(text) == _script_by_counting(text)


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(SCRIPT_TEXT, st.lists(st.sampled_from(SENTENCES), max_size=6).map(" ".join)),
    DECLARED,
    READ,
)
def test_skipping_detection_never_keeps_an_item_detection_would_drop(
    text: str, declared: str | None, read: frozenset[str]
) -> None:
    from digest.summarize.language import detect, surely_read

    if surely_read(text, declared, read):
        assert detect(text, declared) in read | {"und"}


def test_detection_is_skipped_only_where_it_could_not_drop_the_item() -> None:
    from digest.summarize.language import surely_read

    fr_en = frozenset({"fr", "en"})
    english = "The regulator fined the retailer for keeping customer data too long."
    assert surely_read(english, "fr-FR", fr_en)  # French or English, whatever detect says
    assert surely_read(english, None, fr_en)  # no other language's function words: kept
    german = "Die Behörde hat gegen den Händler ein Bußgeld verhängt, und die Kunden sind nicht"
    assert not surely_read(german, None, fr_en)  # German function words: detect
    assert surely_read(german, None, fr_en | {"de"})
    assert not surely_read(english, "de", fr_en)  # a language not read: detect
    assert not surely_read(english, "fr", frozenset({"fr"}))  # detect could say "en": detect
    assert not surely_read("Регулятор оштрафовал компанию", "fr", fr_en)  # another script
