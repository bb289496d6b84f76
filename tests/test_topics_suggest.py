"""digest topics suggest: edits mined from tuning misses, measured on tuning and held-out rows."""

from __future__ import annotations

from digest.models import Term, TopicDef
from digest.pipeline.wiring import make_matcher
from digest.topics import EvalRow
from digest.topics.suggest import suggest

TOPIC = TopicDef(
    "sc",
    "Sovereign cloud",
    (Term("secnumcloud", 3), Term("cloud", 0.5), Term("sovereignty", 1.5)),
    require=(("cloud", "secnumcloud"),),
    threshold=3.0,
)


def row(title: str, labels: set[str]) -> EvalRow:
    return EvalRow(title, "", frozenset(labels))


TUNING = [
    row("SecNumCloud for the ministry", {"sc"}),
    row("City moves mail off Gmail for sovereignty", {"sc"}),  # missed: no cloud word
    row("Region moves staff mail off Gmail", {"sc"}),  # missed
    row("Gmail adds a dark mode", set()),
    row("Cloud gaming service launches", set()),
]
HELDOUT = [
    row("Province takes its mail off Gmail", {"sc"}),
    row("Gmail outage hits users", set()),
]


def test_suggest_proposes_a_term_found_in_several_missed_items_and_measures_it() -> None:
    found = suggest(TOPIC, TUNING, HELDOUT, compile=make_matcher, limit=5)
    adds = [s for s in found if s.kind == "add term" and "'gmail'" in s.summary]
    assert adds, [s.summary for s in found]
    best = adds[0]
    assert 'include += { term = "gmail", weight = 1.5 }' in best.toml
    assert 'require[0] += "gmail"' in best.toml  # the missed items lacked the require group
    # Measured on the tuning rows: both misses recovered, one wrongly kept ("dark mode").
    t = best.tuning
    assert (t.before.tp, t.before.fn) == (1, 2)
    assert (t.after.tp, t.after.fn, t.after.fp) == (3, 0, 1)
    assert t.recall_gain == 0.6667
    assert set(t.gained) == {TUNING[1].title, TUNING[2].title}
    assert t.lost == ("Gmail adds a dark mode",)
    # ... and shown on the held-out rows, which never chose it.
    assert best.heldout is not None
    assert best.heldout.gained == ("Province takes its mail off Gmail",)
    assert best.heldout.lost == ("Gmail outage hits users",)


def test_suggest_lists_edits_by_f1_gained_on_tuning_and_drops_those_that_do_not_help() -> None:
    found = suggest(TOPIC, TUNING, (), compile=make_matcher, limit=10)
    gains = [s.tuning.after.f1 - s.tuning.before.f1 for s in found]
    assert all(g > 0 for g in gains)
    assert gains == sorted(gains, reverse=True)
    assert all(s.heldout is None for s in found)


def test_suggest_lowers_the_weight_behind_several_wrongly_kept_items() -> None:
    topic = TopicDef("dp", "Data protection", (Term("privacy", 3), Term("gdpr", 3)), threshold=3.0)
    rows = [
        row("GDPR fine for a bank", {"dp"}),
        EvalRow("Screen protector review", "A privacy screen for your laptop.", frozenset()),
        EvalRow("Best screen filters", "Our privacy picks this year.", frozenset()),
        row("Privacy regulator fines a bank", {"dp"}),
    ]
    found = suggest(topic, rows, compile=make_matcher, limit=5)
    lower = [s for s in found if s.kind == "lower weight"]
    assert lower, [s.summary for s in found]
    assert "'privacy' from 3 to 1.5" in lower[0].summary
    assert lower[0].tuning.after.fp == 0
