"""The shipped topics (config/topics.toml) on the labeled dev set, and evaluation itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from digest import config
from digest.errors import UsageError
from digest.topics import EvalRow, TopicMatcher, check_examples, evaluate, parse_eval_lines

REPO = Path(__file__).resolve().parent.parent
TOPICS = REPO / "config" / "topics.toml"
DEV_SET = REPO / "tests" / "data" / "topics_dev.jsonl"


@pytest.fixture(scope="module")
def shipped() -> config.Settings:
    return config.parse_settings(_load_toml(TOPICS), str(TOPICS))


def _load_toml(path: Path) -> dict[str, object]:
    import tomllib

    return tomllib.loads(path.read_text("utf-8"))


def test_a_config_can_include_the_shipped_topics(tmp_path: Path) -> None:
    cfg = tmp_path / "digest.toml"
    cfg.write_text(f'include = ["{TOPICS}"]\n', encoding="utf-8")
    settings = config.load(cfg)
    assert [t.id for t in settings.topic_defs()] == ["sovereign_cloud", "data_protection"]


def test_the_dev_set_is_large_bilingual_and_has_negatives() -> None:
    rows = parse_eval_lines(DEV_SET.read_text("utf-8").splitlines(), str(DEV_SET))
    assert len(rows) >= 150
    assert {r.lang for r in rows} == {"fr", "en"}
    assert sum(1 for r in rows if not r.labels) >= 50
    assert sum(1 for r in rows if r.labels == {"sovereign_cloud", "data_protection"}) >= 5


def test_shipped_topics_reach_f1_of_090_on_the_dev_set(shipped: config.Settings) -> None:
    rows = parse_eval_lines(DEV_SET.read_text("utf-8").splitlines(), str(DEV_SET))
    report = evaluate(TopicMatcher(shipped.topic_defs()), rows)
    for tid in ("sovereign_cloud", "data_protection"):
        assert report.topics[tid].f1 >= 0.90, (tid, report.topics[tid])


def test_shipped_examples_all_hold(shipped: config.Settings) -> None:
    defs = shipped.topic_defs()
    assert check_examples(TopicMatcher(defs), defs) == []


@pytest.mark.parametrize(
    ("title", "text", "expected"),
    [
        # The editors' brief (../shared/topics-brief.md, "Both"): health data hosted by a US
        # provider, the Health Data Hub first, is both topics.
        ("Le Health Data Hub quittera Azure", "Migration vers un hébergeur souverain.", "sc dp"),
        ("Amende de la CNIL", "Des cookies déposés sans consentement.", "dp"),
        ("Cloudy skies all weekend", "Clouds and showers from the Atlantic.", ""),
        ("Norway's sovereign wealth fund buys data centre stakes", "Cloud growth.", ""),
        ("Ransomware halts a port", "Systems restored from backups.", ""),
        ("Xbox Cloud Gaming on TVs", "Stream games from the cloud.", ""),
    ],
)
def test_shipped_topics_on_typical_items(
    shipped: config.Settings, title: str, text: str, expected: str
) -> None:
    sc, dp = TopicMatcher(shipped.topic_defs()).match(title, text)
    assert (sc.kept, dp.kept) == ("sc" in expected, "dp" in expected)


# --------------------------------------------------------------------------- evaluate


def test_evaluate_counts_true_and_false_positives_per_topic() -> None:
    from digest.models import Term, TopicDef

    m = TopicMatcher([TopicDef("dp", "DP", (Term("cnil"),))])
    rows = [
        EvalRow("CNIL fine", "", frozenset({"dp"})),
        EvalRow("CNIL hires", "", frozenset()),
        EvalRow("GDPR fine", "", frozenset({"dp"})),
        EvalRow("Weather", "", frozenset()),
    ]
    report = evaluate(m, rows)
    s = report.topics["dp"]
    assert (s.tp, s.fp, s.fn) == (1, 1, 1)
    assert (s.precision, s.recall, s.f1) == (0.5, 0.5, 0.5)
    assert [(w.row.title, w.expected) for w in report.misclassified] == [
        ("CNIL hires", False),
        ("GDPR fine", True),
    ]
    assert report.as_json()["topics"] == {
        "dp": {"precision": 0.5, "recall": 0.5, "f1": 0.5, "tp": 1, "fp": 1, "fn": 1}
    }
    assert report.topics["dp"].tn == 1
    assert report.scorers["learned"] is None


class WordScorer:
    """A learned scorer stand-in with a fixed, readable rule: probability 0.95 when the word
    'privacy' is in the title, 0.5 otherwise (the evaluation only needs probabilities)."""

    name = "word-scorer"

    def probabilities(self, title: str, text: str) -> dict[str, float]:
        return {"dp": 0.95 if "privacy" in title.lower() else 0.5}


def test_evaluate_reports_rules_learned_and_combined_and_the_configs_actual_decisions() -> None:
    from digest.models import Term, TopicDef

    m = TopicMatcher([TopicDef("dp", "DP", (Term("cnil"),))])
    rows = [
        EvalRow("CNIL fine", "", frozenset({"dp"})),  # rules keep it
        EvalRow("Privacy watchdog probe", "", frozenset({"dp"})),  # only the model keeps it
        EvalRow("Privacy screen review", "", frozenset()),  # the model's false positive
        EvalRow("Weather", "", frozenset()),
    ]
    suggest = evaluate(m, rows, learned=WordScorer())
    assert suggest.scorers["rules"] is not None
    assert suggest.scorers["learned"] is not None
    rules, learned = suggest.scorers["rules"]["dp"], suggest.scorers["learned"]["dp"]
    combined = suggest.scorers["combined"]["dp"]  # type: ignore[index]
    assert (rules.tp, rules.fp, rules.fn, rules.tn) == (1, 0, 1, 2)
    assert (learned.tp, learned.fp, learned.fn, learned.tn) == (1, 1, 1, 1)
    assert (combined.tp, combined.fp, combined.fn, combined.tn) == (2, 1, 0, 1)
    # By default the model only suggests: the actual decisions are the rules'.
    assert suggest.topics["dp"] == rules
    assert suggest.deciding == {"dp": "rules"}
    # A topic that lets the model keep items is decided by the combination.
    keep = evaluate(m, rows, learned=WordScorer(), keep=frozenset({"dp"}))
    assert keep.topics["dp"] == combined
    assert keep.deciding == {"dp": "combined"}
    # A higher floor turns the model's keeps off.
    strict = evaluate(m, rows, learned=WordScorer(), floors={"dp": 0.99}, keep=frozenset({"dp"}))
    assert strict.topics["dp"] == rules


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "rows.jsonl: line 2: not valid JSON"),
        ("[1, 2]", "rows.jsonl: line 2: expected a JSON object"),
        ('{"summary": "x", "labels": []}', "rows.jsonl: line 2: 'title' must be a string"),
        ('{"title": "x", "labels": "dp"}', "rows.jsonl: line 2: 'labels' must be a list"),
    ],
)
def test_a_bad_jsonl_line_is_a_usage_error_naming_file_and_line(line: str, message: str) -> None:
    good = '{"title": "a", "summary": "b", "lang": "fr", "labels": [], "extra": 1}'
    with pytest.raises(UsageError, match=message):
        parse_eval_lines([good, line], "rows.jsonl")


def test_blank_lines_are_skipped_and_line_numbers_kept() -> None:
    rows = parse_eval_lines(["", '{"title": "a", "labels": []}'], "f")
    assert rows[0].line == 2
    assert rows[0].text == ""


# --------------------------------------------------------------------------- documented examples


def _doc_topics() -> config.Settings:
    import re
    import tomllib

    doc = (REPO / "docs" / "configuration.md").read_text("utf-8")
    merged: dict[str, object] = {"topics": {}}
    for block in re.findall(r"```toml\n(.*?)```", doc, flags=re.S):
        topics = tomllib.loads(block).get("topics", {})  # other sections document other keys
        merged["topics"].update(topics)  # type: ignore[attr-defined]
    return config.parse_settings(merged, "docs/configuration.md")


@pytest.mark.parametrize(
    ("title", "text", "topic", "kept"),
    [
        ("L'État impose SecNumCloud pour les données sensibles", "", "sovereign_cloud", True),
        ("Dépendance aux hyperscalers américains : le Sénat alerte", "", "sovereign_cloud", True),
        ("Souveraineté alimentaire : la loi agricole adoptée", "", "sovereign_cloud", False),
        ("AWS launches new Graviton instances in its cloud", "", "sovereign_cloud", False),
        ("Norway's sovereign wealth fund buys data centres", "", "sovereign_cloud", False),
        ("La CNIL inflige une amende à Free", "", "data_protection", True),
        ("New privacy rules", "", "data_protection", True),
        ("Weekly notes", "consent, cookies and a fine", "data_protection", True),
        ("Cookies de Noël", "", "data_protection", False),
    ],
)
def test_the_worked_examples_of_the_documentation_hold(
    title: str, text: str, topic: str, kept: bool
) -> None:
    settings = _doc_topics()
    defs = settings.topic_defs()
    matches = {m.topic_id: m for m in TopicMatcher(defs).match(title, text)}
    assert matches[topic].kept is kept
    assert check_examples(TopicMatcher(defs), defs) == []
