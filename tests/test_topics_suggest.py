"""digest topics suggest: edits mined from tuning misses and from the editors' decisions,
measured on tuning and held-out rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from digest.models import Term, TopicDef
from digest.pipeline.wiring import make_matcher
from digest.topics import EvalRow
from digest.topics.suggest import suggest, suggest_from_decisions

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


def test_editor_decisions_yield_edits_that_set_them_right_measured_on_held_out_rows() -> None:
    decided = [
        row("Province moves its mail off Gmail", {"sc"}),  # added by an editor: a miss
        row("SecNumCloud vendor sponsors a cloud gaming cup", set()),  # dropped: wrongly kept
        row("SecNumCloud for the ministry", {"sc"}),  # kept: the rules agree
    ]
    found = suggest_from_decisions(TOPIC, decided, TUNING, HELDOUT, compile=make_matcher)
    gmail = next(s for s in found if s.kind == "add term" and "'gmail'" in s.summary)
    assert "in 1 titles editors added" in gmail.summary
    assert gmail.decisions is not None
    assert gmail.decisions.gained == ("Province moves its mail off Gmail",)
    assert gmail.heldout is not None
    assert gmail.heldout.gained == ("Province takes its mail off Gmail",)
    assert gmail.heldout.recall_gain == 1.0
    # Every edit listed sets right more decisions than it breaks, best first.
    nets = [len(s.decisions.gained) - len(s.decisions.lost) for s in found if s.decisions]
    assert len(nets) == len(found)
    assert all(n > 0 for n in nets)
    assert nets == sorted(nets, reverse=True)


def test_suggest_mines_the_editors_stored_drops_and_adds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from conftest import run_cli
    from digest.pipeline import desk
    from digest.pipeline.collect import collect
    from digest.pipeline.draft import build_draft
    from digest.store import open_store
    from test_desk import EDITOR, SECRET, make, rss

    monkeypatch.setenv("DIGEST_SECRET", SECRET)
    added = ("Hosting provider Scaleway opens a region", "It mentions SecNumCloud once.")
    dropped = ("SecNumCloud vendor sponsors the gaming cup", "Esports news.")
    keep = ("Sovereign cloud: Bleu passes SecNumCloud", "A sovereign cloud offer.")
    (tmp_path / "feed.xml").write_text(rss([keep, dropped, added]), encoding="utf-8")
    settings = make(tmp_path)
    store = open_store(settings.storage.url)
    try:
        collect(settings, store)
        view, _ = build_draft(settings, store)
        assert view is not None
        by_title = {e.title: e.item_id for e in view.entry_list()}
        near = {c.title: c.item_id for c in view.near_misses}
        desk.drop(settings, store, by_title[dropped[0]], editor=EDITOR)
        desk.add(settings, store, near[added[0]], topic="sovereign_cloud", editor=EDITOR)
    finally:
        store.close()
    config = tmp_path / "digest.toml"
    config.write_text(
        f"""
[storage]
url = "{settings.storage.url}"
[topics.sovereign_cloud]
title = "Sovereign cloud"
include = ["sovereign cloud", "SecNumCloud"]
threshold = 2.0
""",
        encoding="utf-8",
    )
    tuning = tmp_path / "tuning.jsonl"
    tuning.write_text(
        json.dumps({"title": keep[0], "summary": keep[1], "labels": ["sovereign_cloud"]}) + "\n",
        encoding="utf-8",
    )
    heldout = tmp_path / "heldout.jsonl"
    heldout.write_text(
        json.dumps(
            {"title": "Scaleway opens a Paris region", "summary": "", "labels": ["sovereign_cloud"]}
        )
        + "\n"
        + json.dumps({"title": "Gaming cup final tonight", "summary": "", "labels": []})
        + "\n",
        encoding="utf-8",
    )
    args = ["--config", str(config), "topics", "suggest", "sovereign_cloud", str(tuning)]
    got = run_cli(capsys, *args, "--heldout", str(heldout), "--json")
    assert got.code == 0, got.err
    data = json.loads(got.out)
    editors = data["editors"]
    assert (editors["items"], editors["added"], editors["dropped"]) == (2, 1, 1)
    scaleway = next(s for s in editors["suggestions"] if "'scaleway'" in s["summary"])
    assert scaleway["decisions"]["gained"] == [added[0]]
    assert scaleway["heldout"]["gained"] == ["Scaleway opens a Paris region"]
    assert scaleway["heldout"]["recall_gain"] == 1.0
    lowered = [s for s in editors["suggestions"] if s["kind"] == "lower weight"]
    assert lowered
    assert lowered[0]["decisions"]["gained"] == [dropped[0]]
    text = run_cli(capsys, *args, "--heldout", str(heldout))
    assert text.code == 0
    assert "from editors' decisions: 2 items (1 kept, added or pinned; 1 dropped)" in text.out
    assert "+ Scaleway opens a Paris region" in text.out
    # Without the editors' decisions, only the tuning set is mined.
    bare = json.loads(run_cli(capsys, *args, "--no-decisions", "--json").out)
    assert "editors" not in bare
