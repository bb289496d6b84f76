"""The learned topic scorer: training on small synthetic labeled sets, its JSON form, its part in
the config's decisions (learned = off/suggest/keep), and `topics learn` / `eval` / `explain`."""

from __future__ import annotations

import gzip
import json
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from conftest import run_cli
from digest import config
from digest.cli.app import out as stdout_console
from digest.errors import UsageError
from digest.models import Term, TopicDef, TopicMatch
from digest.pipeline.learning import (
    decide_with_model,
    editor_examples,
    load_model,
    near_misses,
)
from digest.store import open_store
from digest.store.learning import editor_labels
from digest.topics import TopicMatcher
from digest.topics.learned import (
    MIN_KNOWN_WORDS,
    Example,
    TextModel,
    _matrix,
    analyze,
    combine,
    data_hash,
    train,
)

PRIVACY = [
    "Regulator fines retailer over customer data breach",
    "Privacy watchdog opens probe into tracking cookies",
    "Data breach exposes personal data of patients",
    "Watchdog fines app for sharing personal data",
    "Privacy regulator orders deletion of personal data",
    "Breach of customer records: regulator opens inquiry",
    "La CNIL sanctionne un site pour ses cookies",
    "Fuite de données personnelles chez un assureur",
]
CLOUD = [
    "Sovereign cloud offer launched for public administrations",
    "European cloud providers complain about hyperscaler licensing",
    "Ministry moves its data to a sovereign cloud provider",
    "Cloud souverain : l'État choisit un hébergeur européen",
    "European cloud alliance wins public contract",
    "Hyperscaler cloud contract questioned by European providers",
]
OTHER = [
    "Football club wins the cup after extra time",
    "Recipe: a quick tomato soup for winter",
    "New phone has a bigger battery and a brighter screen",
    "Stock markets close higher on oil prices",
    "Festival announces its summer line-up",
    "Weather: storms expected over the weekend",
    "Train strike disrupts travel across the country",
    "Museum reopens after two years of works",
    "Football cup final moved to the weekend",
    "Storms expected: train travel disrupted at the weekend",
]


def labeled() -> list[Example]:
    return (
        [Example(t, "", frozenset({"dp"})) for t in PRIVACY]
        + [Example(t, "", frozenset({"sc"})) for t in CLOUD]
        + [Example(t, "", frozenset()) for t in OTHER]
    )


@pytest.fixture(scope="module")
def model() -> TextModel:
    return train(labeled(), ["dp", "sc"])


def test_the_model_rates_unseen_on_topic_items_above_off_topic_ones(model: TextModel) -> None:
    on = model.probabilities("Regulator fines watchdog over personal data breach", "")
    off = model.probabilities("Storms expected for the football cup final", "")
    assert on["dp"] > 0.5 > off["dp"]
    assert on["dp"] > on["sc"]
    cloud = model.probabilities("A sovereign cloud for European administrations", "")
    assert cloud["sc"] > 0.5 > cloud["dp"]


def test_batch_scoring_is_the_training_features_exactly(model: TextModel) -> None:
    examples = labeled()
    docs = [analyze(e.title, e.text) for e in examples]
    x = _matrix(docs, {f: i for i, f in enumerate(model.features)}, model.idf)
    expected = x @ model.coef + model.intercept
    got = model.decision([(e.title, e.text) for e in examples])
    assert np.allclose(got, expected)


def test_feature_counts_are_the_training_features_in_the_same_order(model: TextModel) -> None:
    index = {f: i for i, f in enumerate(model.features)}
    for e in labeled()[:60]:
        counts, _share = model._counts(e.title, e.text)
        expected = Counter(index[f] for f in analyze(e.title, e.text) if f in index)
        # Same counts in the same order: the scores add up in the same order, to the last bit.
        assert list(counts.items()) == list(expected.items())


def test_json_round_trip_scores_the_same_and_runs_no_code(model: TextModel, tmp_path: Path) -> None:
    path = tmp_path / "model.json.gz"
    model.save(path)
    raw = json.loads(gzip.decompress(path.read_bytes()))
    assert raw["format"] == 1
    assert raw["topics"] == ["dp", "sc"]
    assert raw["data_sha256"] == data_hash(labeled()) == model.data_hash
    again = TextModel.load(path)
    items = [("Watchdog fines retailer", "personal data"), ("", ""), ("Cloud", "x" * 5000)]
    assert np.allclose(again.decision(items), model.decision(items), atol=1e-3)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not json", "cannot read the topic model"),
        (b'{"format": 99}', "not a digest topic model of format 1"),
        (b'{"format": 1, "topics": ["dp"]}', "not a valid topic model"),
        (
            b'{"format": 1, "topics": ["dp"], "features": ["w:a"], "idf": [1, 2], '
            b'"coef": [[1]], "intercept": [0]}',
            "not a valid topic model",
        ),
    ],
)
def test_a_broken_model_file_is_one_clear_error(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "model.json"
    path.write_bytes(content)
    with pytest.raises(UsageError, match=message):
        TextModel.load(path)


def test_no_opinion_on_text_in_a_language_it_never_saw(model: TextModel) -> None:
    assert model.probabilities("Сколько стоит безопасность почты", "") == {}
    assert model.known_share("Сколько стоит безопасность почты", "") == 0.0
    assert model.probabilities("Regulator fines retailer", "") != {}


def test_the_data_hash_ignores_order_but_not_labels() -> None:
    a = labeled()
    assert data_hash(a) == data_hash(list(reversed(a)))
    flipped = [Example(a[0].title, a[0].text, frozenset()), *a[1:]]
    assert data_hash(flipped) != data_hash(a)


def test_an_editor_decision_speaks_only_for_its_topic() -> None:
    base = labeled()
    # Said of "sc" only: the item is not taken as a negative of "dp".
    decision = Example("Regulator fines cloud provider", "", frozenset(), only=frozenset({"sc"}))
    m = train([*base, decision], ["dp", "sc"])
    assert m.trained_on["per_topic"] == {
        "dp": {"in": len(PRIVACY), "out": len(CLOUD) + len(OTHER)},
        "sc": {"in": len(CLOUD), "out": len(PRIVACY) + len(OTHER) + 1},
    }


def test_a_topic_without_negatives_cannot_be_learned() -> None:
    with pytest.raises(UsageError, match="'dp' needs labeled items both in and out"):
        train([Example(t, "", frozenset({"dp"})) for t in PRIVACY], ["dp"])


@settings(max_examples=50, deadline=None)
@given(st.text(max_size=300), st.text(max_size=300))
def test_any_text_gets_a_probability_and_an_explanation(title: str, body: str) -> None:
    m = _MODEL
    p = m.probabilities(title, body)
    if not p:  # no opinion: too few of its words are known
        assert m.known_share(title, body) < MIN_KNOWN_WORDS
        return
    assert set(p) == {"dp", "sc"}
    assert all(0.0 <= v <= 1.0 for v in p.values())
    prob, drivers = m.drivers(title, body, "dp")
    assert abs(prob - p["dp"]) < 1e-6
    assert len(drivers) <= 6


_MODEL = train(labeled(), ["dp", "sc"])


# --------------------------------------------------------------------------- with the rules

DP = TopicDef("dp", "DP", (Term("cnil", 3.0),), exclude=("recette",), threshold=3.0)


def test_keep_mode_keeps_what_the_rules_drop_at_the_floor_but_never_a_vetoed_item() -> None:
    matcher = TopicMatcher([DP])
    dropped = matcher.match("Watchdog fines retailer", "")[0]
    vetoed = matcher.match("Recette", "")[0]
    keep = replace(DP, learned="keep", learned_floor=0.8)
    assert combine([keep], [dropped], {"dp": 0.85})[0].kept
    assert combine([keep], [dropped], {"dp": 0.85})[0].learned == 0.85
    assert not combine([keep], [dropped], {"dp": 0.79})[0].kept
    assert not combine([keep], [vetoed], {"dp": 0.99})[0].kept
    suggest = replace(DP, learned="suggest", learned_floor=0.8)
    assert not combine([suggest], [dropped], {"dp": 0.99})[0].kept


def _settings(tmp_path: Path, mode: str, model_file: Path) -> config.Settings:
    cfg = tmp_path / "digest.toml"
    cfg.write_text(
        f"""
[storage]
url = "sqlite:///{tmp_path}/digest.db"
topic_model = "{model_file}"

[topics.dp]
title = "DP"
threshold = 3.0
include = [{{ term = "CNIL", weight = 3 }}]
learned = "{mode}"
learned_floor = 0.6
""",
        encoding="utf-8",
    )
    return config.load(cfg)


def test_fetch_decisions_load_the_model_only_for_keep_topics(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{", encoding="utf-8")
    texts = [("Watchdog fines retailer over personal data breach", "")]
    s = _settings(tmp_path, "suggest", broken)
    rules = [TopicMatcher(s.topic_defs()).match(*texts[0])]
    # suggest: the (broken) model is never read at fetch time.
    assert decide_with_model(s, texts, rules) == rules
    # keep: it is; a broken file is logged and the shipped model decides (it knows no "dp").
    with caplog.at_level(logging.ERROR):
        assert decide_with_model(_settings(tmp_path, "keep", broken), texts, rules) == rules
    assert "cannot read the topic model" in caplog.text
    assert "the shipped topic model decides instead" in caplog.text
    # digest check, explain and topics eval read it strictly: one clear error.
    with pytest.raises(UsageError, match="cannot read the topic model"):
        load_model(_settings(tmp_path, "keep", broken), strict=True)
    good = tmp_path / "model.json.gz"
    train(labeled(), ["dp", "sc"]).save(good)
    kept = decide_with_model(_settings(tmp_path, "keep", good), texts, rules)
    assert kept[0][0].kept
    assert kept[0][0].learned is not None
    assert kept[0][0].learned >= 0.6
    assert not rules[0][0].kept


# --------------------------------------------------------------------------- editors' decisions


def _store_with_decisions(url: str, *, table: bool) -> None:
    from digest.models import FeedSpec, Item
    from digest.store.feeds import sync_feeds
    from digest.store.items import insert_items

    now = datetime.now(UTC)
    store = open_store(url)
    try:
        with store.begin() as conn:
            feed = sync_feeds(conn, [FeedSpec(url="https://f.example/rss")], now=now)[0]
            items = [
                Item(
                    feed_url="https://f.example/rss",
                    guid=f"g{i}",
                    url=f"https://f.example/{i}",
                    canonical_url=f"https://f.example/{i}",
                    title=t,
                    summary_html=f"<p>{t}</p>",
                    published=now,
                )
                for i, t in enumerate(["Watchdog probes tracker", "Cup final tonight"])
            ]
            ids = [i for i, _ in insert_items(conn, feed.id, items, now=now)]
            if table:
                conn.execute(
                    text(
                        "CREATE TABLE IF NOT EXISTS editor_decisions (id INTEGER PRIMARY KEY, "
                        "item_id INTEGER NOT NULL, topic_id VARCHAR(64) NOT NULL, "
                        "action VARCHAR(16) NOT NULL, kept BOOLEAN NOT NULL, editor TEXT NOT NULL,"
                        " at TIMESTAMP NOT NULL, issue_number INTEGER)"
                    )
                )
                for n, (item, topic, action, kept) in enumerate(
                    [
                        (ids[0], "dp", "drop", False),
                        (ids[0], "dp", "add", True),  # the later word wins
                        (ids[1], "dp", "drop", False),
                    ]
                ):
                    conn.execute(
                        text(
                            "INSERT INTO editor_decisions (item_id, topic_id, action, kept, "
                            "editor, at) VALUES (:i, :t, :a, :k, 'ed@example.org', :at)"
                        ),
                        {"i": item, "t": topic, "a": action, "k": kept, "at": f"2026-01-0{n + 1}"},
                    )
    finally:
        store.close()


def test_editor_decisions_are_read_when_the_desk_table_exists(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/d.db"
    _store_with_decisions(url, table=True)
    store = open_store(url)
    try:
        with store.connect() as conn:
            labels = editor_labels(conn)
        examples = editor_examples(store)
    finally:
        store.close()
    assert [(lab.title, lab.topic_id, lab.kept) for lab in labels] == [
        ("Watchdog probes tracker", "dp", True),
        ("Cup final tonight", "dp", False),
    ]
    assert examples[0] == Example(
        "Watchdog probes tracker", "Watchdog probes tracker", frozenset({"dp"}), frozenset({"dp"})
    )


def test_a_store_without_editor_decisions_teaches_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/d.db"
    _store_with_decisions(url, table=False)
    store = open_store(url)
    try:
        assert editor_examples(store) == []
    finally:
        store.close()


def test_near_misses_for_the_desk_are_rule_drops_the_model_rates_high(tmp_path: Path) -> None:
    from digest.models import Item, StoredItem

    good = tmp_path / "model.json.gz"
    train(labeled(), ["dp", "sc"]).save(good)
    s = _settings(tmp_path, "suggest", good)
    now = datetime.now(UTC)

    def stored(i: int, title: str) -> StoredItem:
        item = Item("f", str(i), f"u{i}", f"u{i}", title, now)
        return StoredItem(id=i, item=item, source="F")

    items = [stored(1, "Watchdog fines retailer over personal data breach"), stored(2, "Cup")]
    matcher = TopicMatcher(s.topic_defs())
    matches = [matcher.match(it.item.title, "") for it in items]
    found = near_misses(s, items, matches)
    assert [(n.item_id, n.topic_id) for n in found] == [(1, "dp")]
    assert found[0].probability >= 0.6
    assert isinstance(matches[0][0], TopicMatch)


# --------------------------------------------------------------------------- the CLI

CONFIG = """
[storage]
url = "sqlite:///var/digest.db"

[topics.dp]
title = "Data protection"
threshold = 3.0
include = [{ term = "CNIL", weight = 3 }]
learned = "MODE"
learned_floor = 0.6
"""

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., tuple[int, str, str]]:
    monkeypatch.setattr(stdout_console, "_width", 200)

    def _run(*args: str, mode: str = "keep") -> tuple[int, str, str]:
        cfg = workdir / "digest.toml"
        cfg.write_text(CONFIG.replace("MODE", mode), encoding="utf-8")
        return run_cli(capsys, "--config", str(cfg), *args)

    return _run


def _jsonl(path: Path, examples: list[Example]) -> Path:
    path.write_text(
        "".join(
            json.dumps({"title": e.title, "summary": e.text, "labels": sorted(e.labels)}) + "\n"
            for e in examples
        ),
        encoding="utf-8",
    )
    return path


def test_learn_then_eval_and_explain_use_the_model(run: Run, workdir: Path) -> None:
    train_file = _jsonl(workdir / "train.jsonl", labeled())
    code, stdout, _ = run("topics", "learn", str(train_file))
    assert code == 0, stdout
    assert f"trained on 24 items: {train_file} (24 items)" in stdout
    assert "0 editor decision(s)" in stdout
    assert "dp: 8 in, 16 out" in stdout
    assert "model written to var/topic-model.json.gz" in stdout
    assert TextModel.load(workdir / "var" / "topic-model.json.gz").topics == ("dp",)

    held = _jsonl(
        workdir / "held.jsonl",
        [
            Example("La CNIL enquête", "", frozenset({"dp"})),
            Example("Regulator fines app over personal data breach", "", frozenset({"dp"})),
            Example("Football: cup final tonight", "", frozenset()),
        ],
    )
    code, stdout, _ = run("topics", "eval", str(held), "--json")
    data = json.loads(stdout)
    rules, learned = data["scorers"]["rules"]["dp"], data["scorers"]["learned"]["dp"]
    combined = data["scorers"]["combined"]["dp"]
    assert (rules["tp"], rules["fn"]) == (1, 1)
    assert learned["tp"] >= 1
    assert learned["fp"] == 0
    assert (combined["tp"], combined["fp"], combined["fn"]) == (2, 0, 0)
    assert data["topics"]["dp"] == {k: v for k, v in combined.items() if k != "tn"}
    assert data["deciding"] == {"dp": "combined"}
    # In suggest mode the actual decisions stay the rules'.
    code, stdout, _ = run("topics", "eval", str(held), "--json", mode="suggest")
    assert json.loads(stdout)["deciding"] == {"dp": "rules"}

    code, stdout, _ = run(
        "explain", "--title", "Regulator fines app over personal data breach", mode="keep"
    )
    assert code == 0
    assert "learned scorer: probability 0." in stdout
    assert "KEPT by the learned scorer" in stdout
    assert "for: 'personal'" in stdout or "for: 'data'" in stdout or "'fines'" in stdout
    code, stdout, _ = run(
        "explain", "--title", "Regulator fines app over personal data breach", mode="suggest"
    )
    assert "a near miss for the editors" in stdout


def test_learn_cv_shows_rules_learned_and_combined_per_floor(run: Run, workdir: Path) -> None:
    train_file = _jsonl(workdir / "train.jsonl", labeled() * 2)
    code, stdout, _ = run("topics", "learn", str(train_file), "--cv")
    assert code == 0, stdout
    assert "cross-validation" in stdout
    assert "rules" in stdout
    assert "floor 0.9 learned" in stdout
    assert "combined" in stdout
    assert not (workdir / "var" / "topic-model.json.gz").exists()


def test_learn_with_nothing_to_learn_is_a_usage_error(run: Run) -> None:
    code, _, stderr = run("topics", "learn", "--no-decisions")
    assert code == 2
    assert "nothing to learn from" in stderr


def test_the_fetch_decider_keeps_by_model_in_one_batch_and_needs_term_narrows_it(
    tmp_path: Path,
) -> None:
    from digest.models import Item
    from digest.pipeline.wiring import make_decider

    good = tmp_path / "model.json.gz"
    train(labeled(), ["dp", "sc"]).save(good)
    now = datetime.now(UTC)
    items = [
        Item("f", "1", "u1", "u1", "Watchdog fines retailer over personal data breach", now),
        Item("f", "2", "u2", "u2", "Football cup final moved to the weekend", now),
    ]
    decider = make_decider(_settings(tmp_path, "keep", good))
    got = decider.decide_many(items, None, "F")
    assert [ms[0].kept for ms in got] == [True, False]
    assert got[0][0].learned is not None
    # One item at a time, the same decision.
    assert decider.decide(items[0], None, "F")[0].kept
    # With learned_needs_term, an item without any of the topic's terms is not kept outright.
    s = _settings(tmp_path, "keep", good)
    strict = s.model_copy(
        update={"topics": {"dp": s.topics["dp"].model_copy(update={"learned_needs_term": True})}}
    )
    assert not make_decider(strict).decide_many(items, None, "F")[0][0].kept
    # And with learned = "suggest" nothing is kept by the model at fetch time.
    suggest = make_decider(_settings(tmp_path, "suggest", good))
    assert suggest.learned is None
    assert not suggest.decide_many(items, None, "F")[0][0].kept


def test_the_desk_lists_items_the_rules_drop_and_the_model_rates_high_as_near_misses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from digest.pipeline.collect import collect
    from digest.pipeline.draft import build_draft
    from test_desk import SECRET, make, rss

    monkeypatch.setenv("DIGEST_SECRET", SECRET)
    model = tmp_path / "model.json.gz"
    names = {"dp": "data_protection", "sc": "sovereign_cloud"}
    renamed = [Example(e.title, e.text, frozenset(names[x] for x in e.labels)) for e in labeled()]
    train(renamed, ["data_protection", "sovereign_cloud"]).save(model)
    missed = ("Regulator fines retailer over customer data breach", "")
    (tmp_path / "feed.xml").write_text(
        rss(
            [
                ("CNIL fines a retailer under the GDPR", "personal data"),
                missed,
                ("Football cup final moved to the weekend", ""),
            ]
        ),
        encoding="utf-8",
    )
    storage = {"url": f"sqlite:///{tmp_path}/digest.db", "topic_model": str(model)}
    digest = {"title": "Veille", "base_url": "http://testserver"}  # the web desk's links
    settings = make(tmp_path, storage=storage, digest=digest)
    store = open_store(settings.storage.url)
    try:
        collect(settings, store)
        view, _ = build_draft(settings, store)
        assert view is not None
        by_title = {c.title: c for c in view.near_misses}
        # None of the rules' terms; the model rates it high: a near miss.
        assert missed[0] in by_title
        assert by_title[missed[0]].topic_id == "data_protection"
        assert "Football cup final moved to the weekend" not in by_title
        # It says why it is offered: the model's probability at the topic's floor, not the rules.
        near = by_title[missed[0]]
        assert near.origin == "learned"
        assert near.floor == 0.9
        assert near.probability is not None
        assert near.probability >= 0.9
        assert near.score < near.threshold
        # And the web desk shows it beside the item.
        from starlette.testclient import TestClient

        from digest.web import create_app
        from test_web_desk import sign_in
        from test_web_helpers import SECRET as WEB_SECRET

        with TestClient(create_app(settings, store, secret=WEB_SECRET)) as client:
            sign_in(client, settings)
            page = client.get("/desk").text
        assert f"learned model: probability {near.probability:.2f} (floor 0.9)" in page
        assert f"rules: score {near.score:.2f} below the threshold 2" in page
    finally:
        store.close()
