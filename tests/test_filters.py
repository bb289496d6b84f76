"""Keep/block rules before the topics: ``[filters] block`` (words, sources, URL patterns) and a
feed's ``include``/``exclude``; what the fetch keeps, what ``explain`` says, what ``check``
refuses."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pytest_httpserver import HTTPServer

from conftest import run_cli
from digest.cli.app import out as stdout_console
from digest.config import Settings, parse_settings
from digest.errors import ConfigError
from digest.models import Item
from digest.pipeline.collect import collect
from digest.pipeline.wiring import make_decider, make_rules
from digest.store import open_store
from digest.store.items import iter_items, load_topic_matches
from digest.topics.rules import glob_to_regex
from test_pipeline import rss, settings_for

NOW = datetime.now(UTC)


def _settings(block: list[str], **feed: Any) -> Settings:
    return parse_settings(
        {
            "filters": {"block": block},
            "feeds": [{"url": "https://regulator.example/rss", "name": "Regulator", **feed}],
            "topics": {"dp": {"title": "Data protection", "include": ["GDPR", "CNIL"]}},
        },
        "t.toml",
    )


def _verdict(
    s: Settings,
    title: str,
    text: str = "",
    url: str = "https://news.example/a",
    source: str = "Regulator",
    feed_url: str = "https://regulator.example/rss",
) -> str | None:
    return make_rules(s).verdict(title=title, text=text, url=url, source=source, feed_url=feed_url)


# --------------------------------------------------------------------------- the rules


def test_a_block_word_drops_the_item_in_any_inflection_and_says_which() -> None:
    s = _settings(["casino"])
    assert _verdict(s, "Les casinos en ligne et le RGPD") == (
        "[filters] block: 'casino' (found 'casinos' in the title)"
    )
    assert _verdict(s, "La CNIL et les jeux", "Rien sur les casinos ici, enfin si.") is not None
    assert _verdict(s, "La CNIL publie son rapport") is None


def test_a_block_source_matches_the_feed_name_url_or_host() -> None:
    assert _verdict(_settings(["source:regulator"]), "x") == "[filters] block: source 'regulator'"
    assert _verdict(_settings(["source:regulator.example"]), "x") is not None
    assert _verdict(_settings(["source:Other"]), "x") is None


def test_a_block_url_glob_is_literal_except_its_stars() -> None:
    s = _settings(["url:*/sponsored/*"])
    assert _verdict(s, "x", url="https://news.example/sponsored/1") == (
        "[filters] block: 'url:*/sponsored/*' matches the link"
    )
    assert _verdict(s, "x", url="https://news.example/news/1") is None
    # A dot in a glob is a dot, not "any character".
    dotted = _settings(["url:https://ads.example.com/*"])
    assert _verdict(dotted, "x", url="https://ads.example.com/p") is not None
    assert _verdict(dotted, "x", url="https://adsXexampleXcom/p") is None


def test_a_block_url_regex_runs_under_re2() -> None:
    s = _settings([r"url:regex:/promo/\d+$"])
    assert _verdict(s, "x", url="https://news.example/promo/42") is not None
    assert _verdict(s, "x", url="https://news.example/promo/soon") is None


def test_a_feed_include_keeps_only_items_that_mention_one_of_its_terms() -> None:
    s = _settings([], include=["sanction"])
    assert _verdict(s, "Sanctions : bilan 2025") is None  # an inflection counts
    assert _verdict(s, "La CNIL publie son rapport annuel") == (
        "feeds[0].include: none of 'sanction' is mentioned"
    )
    # The topics' term syntax: a trailing * takes the verb too.
    assert _verdict(_settings([], include=["sanction*"]), "La CNIL sanctionne un hôpital") is None
    # Another feed is not concerned by this feed's rules.
    assert _verdict(s, "Rapport annuel", feed_url="https://other.example/rss") is None


def test_a_feed_exclude_drops_what_it_names_before_its_include_keeps() -> None:
    s = _settings([], include=["sanction"], exclude=["recrutement"])
    assert _verdict(s, "Sanction et recrutement") == (
        "feeds[0].exclude: 'recrutement' (found 'recrutement' in the title)"
    )


def test_without_rules_nothing_is_looked_at() -> None:
    rules = make_rules(_settings([]))
    assert rules.empty
    assert rules.verdict(title="casino", text="", url="u", source="s", feed_url="f") is None


def test_a_pattern_re2_cannot_take_is_a_config_error_naming_the_entry() -> None:
    with pytest.raises(ConfigError, match=r"filters\.block entry 'url:regex:\(a\+\)"):
        make_rules(_settings([r"url:regex:(a+)\1"]))
    with pytest.raises(ConfigError, match="back-references"):
        make_rules(_settings([r"regex:(x+)\1"]))


def test_a_feed_rule_re2_cannot_take_is_a_config_error_naming_the_feed_key() -> None:
    with pytest.raises(ConfigError, match=r"^feeds\[0\]\.exclude\[1\] \(term 'regex:\(\?=x\)'\)"):
        make_rules(_settings([], exclude=["offre", "regex:(?=x)"]))


@pytest.mark.parametrize(
    "block",
    [[""], ["source:"], ["url:"], ["x" * 501], ["w"] * 1001],
)
def test_an_unusable_block_list_is_refused_when_the_config_loads(block: list[str]) -> None:
    with pytest.raises(ConfigError, match=r"filters\.block"):
        _settings(block)


def test_a_nested_repeat_pattern_stays_linear_on_a_hostile_link() -> None:
    # (a+)+$ takes exponential time in a backtracking engine; RE2 answers at once.
    s = _settings(["url:regex:(a+)+$"])
    assert _verdict(s, "x", url="https://x.example/" + "a" * 5000 + "!") is None


@given(st.text(max_size=40).filter(lambda g: "*" not in g and "?" not in g), st.text(max_size=5))
def test_a_glob_without_wildcards_matches_exactly_itself(glob: str, more: str) -> None:
    import re2  # type: ignore[import-untyped]

    rx = re2.compile(glob_to_regex(glob))
    assert rx.search(glob) is not None
    assert (rx.search(glob + more) is not None) == (more == "")


@settings(max_examples=60, deadline=None)
@given(
    title=st.text(max_size=80),
    text=st.text(max_size=200),
    url=st.text(max_size=80),
)
def test_the_rules_never_fail_on_whatever_a_feed_sends(title: str, text: str, url: str) -> None:
    rules = _RULES
    got = rules.verdict(title=title, text=text, url=url, source="s", feed_url="f")
    assert got is None or isinstance(got, str)


_RULES = make_rules(
    parse_settings(
        {
            "filters": {"block": ["casino", "regex:pr[o0]mo", "url:*/ads/*", "source:spam"]},
            "feeds": [{"url": "f", "include": ["sanction"], "exclude": ["offre"]}],
        },
        "t.toml",
    )
)


# --------------------------------------------------------------------------- the decider


def test_a_rule_overrides_a_feed_marked_always_on_a_topic() -> None:
    s = parse_settings(
        {
            "feeds": [
                {
                    "url": "https://regulator.example/rss",
                    "always": ["dp"],
                    "include": ["sanction"],
                }
            ],
            "topics": {"dp": {"title": "Data protection", "include": ["GDPR"]}},
        },
        "t.toml",
    )
    decider = make_decider(s)
    spec = s.feed_specs()[0]

    def item(title: str) -> Item:
        return Item(spec.url, title, "https://r/" + title, "https://r/" + title, title, NOW)

    [kept] = decider.decide(item("Sanction contre une banque"), spec, "Regulator")
    assert kept.kept
    assert kept.forced
    assert not kept.rule
    [dropped] = decider.decide(item("Rapport annuel publié"), spec, "Regulator")
    assert not dropped.kept
    assert dropped.rule == "feeds[0].include: none of 'sanction' is mentioned"


# --------------------------------------------------------------------------- end to end

REGULATOR = rss(
    "Regulator",
    [
        ("r1", "Sanction: a retailer fined under the GDPR", "The regulator sanctioned a shop."),
        ("r2", "The regulator publishes its annual report", "Figures of the year."),
        ("r3", "Job offer: legal officer", "The regulator is hiring."),
    ],
)
PRESS = rss(
    "Press",
    [
        ("p1", "GDPR fine for a casino operator", "Personal data of gamblers were sold."),
        ("p2", "CNIL: new GDPR guidance", "The CNIL publishes guidance on personal data."),
        ("sponsored/p3", "Sponsored: our GDPR compliance suite", "Buy it now."),
    ],
)


@pytest.fixture
def with_rules(httpserver: HTTPServer, tmp_path: Path) -> Settings:
    httpserver.expect_request("/regulator.xml").respond_with_data(
        REGULATOR, content_type="application/rss+xml"
    )
    httpserver.expect_request("/press.xml").respond_with_data(
        PRESS, content_type="application/rss+xml"
    )
    return settings_for(
        tmp_path,
        [
            {
                "url": httpserver.url_for("/regulator.xml"),
                "name": "Regulator",
                "always": ["data_protection"],
                "include": ["sanction"],
            },
            {"url": httpserver.url_for("/press.xml"), "name": "Press"},
        ],
        filters={"block": ["casino", "url:*/sponsored/*"]},
    )


def test_the_fetch_keeps_what_the_rules_let_through_and_records_the_rule(
    with_rules: Settings,
) -> None:
    store = open_store(with_rules.storage.url)
    counts = collect(with_rules, store)
    assert counts.items_new == 6
    assert dict(counts.kept_per_topic) == {"data_protection": 2}
    with store.connect() as conn:
        decided = {
            s.item.guid: {m.topic_id: m for m in load_topic_matches(conn, s.id)}
            for s in iter_items(conn)
        }
    dp = {guid: d["data_protection"] for guid, d in decided.items()}
    assert {g for g, m in dp.items() if m.kept} == {"r1", "p2"}
    assert dp["r2"].rule == "feeds[0].include: none of 'sanction' is mentioned"
    assert dp["p1"].rule.startswith("[filters] block: 'casino'")
    assert dp["sponsored/p3"].rule == "[filters] block: 'url:*/sponsored/*' matches the link"


@pytest.fixture
def run(
    with_rules: Settings,
    workdir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> Any:
    monkeypatch.setattr(stdout_console, "_width", 200)
    regulator, press = (f.url for f in with_rules.feeds)
    (workdir / "digest.toml").write_text(
        f"""
[storage]
url = "{with_rules.storage.url}"
[fetch]
allow_private = true
[filters]
block = ["casino", "url:*/sponsored/*"]
[[feeds]]
url = "{regulator}"
name = "Regulator"
always = ["data_protection"]
include = ["sanction"]
[[feeds]]
url = "{press}"
name = "Press"
[topics.sovereign_cloud]
title = "Sovereign cloud"
include = ["sovereign cloud", "SecNumCloud", "cloud souverain"]
[topics.data_protection]
title = "Data protection"
include = ["GDPR", "RGPD", "personal data", "CNIL"]
""",
        encoding="utf-8",
    )
    collect(with_rules, open_store(with_rules.storage.url))

    def _run(*args: str) -> tuple[int, str, str]:
        return run_cli(capsys, "--config", str(workdir / "digest.toml"), *args)

    return _run


def test_explain_names_the_rule_that_decided(run: Any, with_rules: Settings) -> None:
    store = open_store(with_rules.storage.url)
    with store.connect() as conn:
        ids = {s.item.guid: s.id for s in iter_items(conn)}
    code, stdout, _ = run("explain", str(ids["r2"]))
    assert code == 0
    assert "decided by a rule before the topics: feeds[0].include: none of 'sanction'" in stdout
    assert "data_protection (Data protection): dropped" in stdout
    _, stdout, _ = run("explain", str(ids["p1"]))
    assert "[filters] block: 'casino' (found 'casino' in the title)" in stdout
    _, stdout, _ = run("explain", str(ids["r1"]))
    assert "decided by a rule" not in stdout
    assert "data_protection (Data protection): KEPT" in stdout
    _, stdout, _ = run("explain", "--title", "Casino: GDPR fine")
    assert "[filters] block: 'casino'" in stdout


def test_check_lists_the_rules_and_refuses_a_pattern_re2_cannot_take(
    run: Any, workdir: Path
) -> None:
    code, stdout, _ = run("check")
    assert code == 0, stdout
    assert "include=1" in stdout
    assert "filters: 2 block rule(s)" in stdout
    path = workdir / "digest.toml"
    path.write_text(
        path.read_text(encoding="utf-8").replace("casino", "url:regex:(?<=x)y"), encoding="utf-8"
    )
    code, _, stderr = run("check")
    assert code == 2
    assert "filters.block entry 'url:regex:(?<=x)y'" in stderr
    assert "Traceback" not in stderr
