"""digest topics eval / topics test / explain, driven through main() for output and exit codes."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from conftest import run_cli
from digest.cli.app import out as stdout_console
from digest.models import FeedSpec, Item
from digest.store import open_store
from digest.store.feeds import sync_feeds
from digest.store.items import insert_items

REPO = Path(__file__).resolve().parent.parent
DEV_SET = REPO / "tests" / "data" / "topics_dev.jsonl"

CONFIG = """
[storage]
url = "sqlite:///var/digest.db"

[[feeds]]
url = "https://regulator.example/rss"
name = "Regulator"
always = ["dp"]

[[feeds]]
url = "https://press.example/rss"
name = "Press"

[topics.dp]
title = "Data protection"
threshold = 3.0
include = [{ term = "CNIL", weight = 3 }, "données personnelles", "cookies"]
exclude = ["recette"]

[topics.sc]
title = "Sovereign cloud"
threshold = 2.0
include = [{ term = "SecNumCloud", weight = 3 }, "cloud"]
require = [["cloud", "SecNumCloud"], ["souverain", "SecNumCloud"]]
"""

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def cfg(workdir: Path) -> Path:
    path = workdir / "digest.toml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


@pytest.fixture
def run(cfg: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Run:
    monkeypatch.setattr(stdout_console, "_width", 200)

    def _run(*args: str, config: Path | None = None) -> tuple[int, str, str]:
        return run_cli(capsys, "--config", str(config or cfg), *args)

    return _run


def store_items(*rows: tuple[str, str, str, str]) -> list[int]:
    """(feed url, title, html, url) rows stored as items first seen now."""
    now = datetime.now(UTC)
    store = open_store("sqlite:///var/digest.db")
    ids: list[int] = []
    with store.begin() as conn:
        feeds = {
            f.url: f.id
            for f in sync_feeds(
                conn,
                [FeedSpec("https://regulator.example/rss"), FeedSpec("https://press.example/rss")],
                now=now,
            )
        }
        for i, (feed, title, html, url) in enumerate(rows):
            item = Item(
                feed_url=feed,
                guid=f"g{i}",
                url=url,
                canonical_url=url,
                title=title,
                published=now - timedelta(hours=i),
                content_html=html,
            )
            ids += [item_id for item_id, _ in insert_items(conn, feeds[feed], [item], now=now)]
    store.close()
    return ids


def write_jsonl(path: Path, *rows: object) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


# --------------------------------------------------------------------------- topics eval


def test_eval_prints_figures_per_topic_and_the_misclassified_items(run: Run, workdir: Path) -> None:
    rows = write_jsonl(
        workdir / "rows.jsonl",
        {"title": "La CNIL sanctionne", "summary": "", "lang": "fr", "labels": ["dp"]},
        {"title": "Le RGPD a cinq ans", "summary": "", "lang": "fr", "labels": ["dp"]},
        {"title": "Un cloud souverain", "summary": "", "lang": "fr", "labels": ["sc"]},
        {"title": "Cloudy weather", "summary": "", "lang": "en", "labels": []},
    )
    code, stdout, _ = run("topics", "eval", str(rows))
    assert code == 0
    assert "dp" in stdout
    assert "0.500" in stdout  # dp recall: one of two found
    assert "line 2: dp missed (score 0): Le RGPD a cinq ans" in stdout


def test_eval_json_is_exactly_one_object_with_the_figures(run: Run, workdir: Path) -> None:
    rows = write_jsonl(
        workdir / "rows.jsonl",
        {"title": "La CNIL sanctionne", "summary": "", "lang": "fr", "labels": ["dp"]},
        {"title": "Recette de cookies CNIL", "summary": "", "lang": "fr", "labels": []},
    )
    code, stdout, _ = run("topics", "eval", str(rows), "--json")
    assert code == 0
    data = json.loads(stdout)
    assert data["topics"] == {
        "dp": {"precision": 1.0, "recall": 1.0, "f1": 1.0, "tp": 1, "fp": 0, "fn": 0},
        "sc": {"precision": 1.0, "recall": 1.0, "f1": 1.0, "tp": 0, "fp": 0, "fn": 0},
    }
    rules = {"precision": 1.0, "recall": 1.0, "f1": 1.0, "tp": 1, "fp": 0, "fn": 0, "tn": 1}
    assert data["scorers"]["rules"]["dp"] == rules
    assert data["scorers"]["combined"]["dp"] == rules
    # No model is installed: the learned scorer is reported as missing, and said so.
    assert data["scorers"]["learned"] is None
    assert data["learned_status"].startswith("none: no learned model")
    assert data["deciding"] == {"dp": "rules", "sc": "rules"}
    assert data["rows"] == 2


def test_eval_table_shows_each_scorer_with_confusion_counts_and_says_no_model(
    run: Run, workdir: Path
) -> None:
    rows = write_jsonl(
        workdir / "rows.jsonl",
        {"title": "La CNIL sanctionne", "summary": "", "lang": "fr", "labels": ["dp"]},
        {"title": "Recette de cookies CNIL", "summary": "", "lang": "fr", "labels": []},
    )
    code, stdout, _ = run("topics", "eval", str(rows))
    assert code == 0
    cells = [
        [c.strip() for c in line.strip().strip("│").split("│")]
        for line in stdout.splitlines()
        if line.startswith("│")
    ]
    dp = [row for row in cells if row[1] == "dp"]
    assert [row[0] for row in dp] == ["rules", "combined"]
    assert dp[0][-4:] == ["1", "0", "0", "1"]  # tp fp fn tn
    assert "learned scorer: none: no learned model is installed" in stdout
    assert "this config decides: dp by rules, sc by rules" in stdout


def test_eval_of_the_dev_set_with_the_shipped_topics_reaches_f1_090(
    run: Run, workdir: Path
) -> None:
    shipped = workdir / "shipped.toml"
    shipped.write_text(f'include = ["{REPO / "config" / "topics.toml"}"]\n', encoding="utf-8")
    code, stdout, _ = run("topics", "eval", str(DEV_SET), "--json", config=shipped)
    assert code == 0
    figures = json.loads(stdout)["topics"]
    assert figures["sovereign_cloud"]["f1"] >= 0.90
    assert figures["data_protection"]["f1"] >= 0.90


def test_eval_names_file_and_line_of_a_bad_row(run: Run, workdir: Path) -> None:
    bad = workdir / "bad.jsonl"
    bad.write_text('{"title": "ok", "labels": []}\n{"title": 3, "labels": []}\n', "utf-8")
    code, _, stderr = run("topics", "eval", str(bad))
    assert code == 2
    assert f"{bad}: line 2: 'title' must be a string" in stderr
    assert "Traceback" not in stderr


def test_eval_of_a_missing_file_is_a_usage_error(run: Run, workdir: Path) -> None:
    code, _, stderr = run("topics", "eval", str(workdir / "nope.jsonl"))
    assert code == 2
    assert "nope.jsonl: file not found" in stderr


def test_eval_without_topics_in_the_config_exits_2(run: Run, workdir: Path) -> None:
    empty = workdir / "empty.toml"
    empty.write_text("", encoding="utf-8")
    rows = write_jsonl(workdir / "r.jsonl", {"title": "x", "labels": []})
    code, _, stderr = run("topics", "eval", str(rows), config=empty)
    assert code == 2
    assert "no [topics.<id>] configured" in stderr


# --------------------------------------------------------------------------- topics suggest


def test_suggest_command_prints_json_edits_and_rejects_an_unknown_topic(
    run: Run, workdir: Path
) -> None:
    rows = write_jsonl(
        workdir / "tuning.jsonl",
        {"title": "SecNumCloud for the ministry", "summary": "", "labels": ["sc"]},
        {"title": "City moves mail off Gmail, souverain", "summary": "", "labels": ["sc"]},
        {"title": "Region moves mail off Gmail, souverain", "summary": "", "labels": ["sc"]},
        {"title": "Gmail adds a dark mode", "summary": "", "labels": []},
    )
    held = write_jsonl(
        workdir / "heldout.jsonl",
        {"title": "Province takes its mail off Gmail, souverain", "summary": "", "labels": ["sc"]},
    )
    code, stdout, _ = run("topics", "suggest", "sc", str(rows), "--heldout", str(held), "--json")
    assert code == 0
    data = json.loads(stdout)
    assert data["topic"] == "sc"
    gmail = [s for s in data["suggestions"] if "'gmail'" in s["summary"]]
    assert gmail
    assert gmail[0]["tuning"]["after"]["tp"] == 3
    assert gmail[0]["heldout"]["gained"] == ["Province takes its mail off Gmail, souverain"]
    code, stdout, _ = run("topics", "suggest", "sc", str(rows), "--heldout", str(held))
    assert code == 0
    assert "held-out: F1 0.000 -> 1.000" in stdout
    code, _, stderr = run("topics", "suggest", "nope", str(rows))
    assert code == 2
    assert "no topic 'nope' (configured: dp, sc)" in stderr


# --------------------------------------------------------------------------- explain


def test_explain_any_text_shows_score_terms_and_decision(run: Run) -> None:
    code, stdout, _ = run(
        "explain", "--title", "La CNIL et les cookies", "--text", "Un cloud pour les données."
    )
    assert code == 0
    assert "dp (Data protection): KEPT, score 8 / threshold 3" in stdout
    assert "+ 'CNIL' in title x1 (matched 'CNIL'): weight 3 x 2 = +6" in stdout
    assert "sc (Sovereign cloud): dropped, score 1 / threshold 2" in stdout
    assert "unmet require group: none of 'souverain', 'SecNumCloud'" in stdout


def test_explain_shows_vetoes(run: Run) -> None:
    _, stdout, _ = run("explain", "--title", "Recette : cookies de la CNIL")
    assert "dp (Data protection): dropped" in stdout
    assert "veto: exclude term 'recette' found" in stdout


def test_explain_a_stored_item_by_id_or_url_uses_its_feed_settings(run: Run) -> None:
    (reg, press) = store_items(
        ("https://regulator.example/rss", "Communiqué", "<p>Rien de neuf.</p>", "https://r/1"),
        (
            "https://press.example/rss",
            "Offre SecNumCloud",
            "<p>Un <b>cloud</b> souverain.</p>",
            "https://p/2",
        ),
    )
    code, stdout, _ = run("explain", str(reg))
    assert code == 0
    assert "Communiqué" in stdout
    assert "dp (Data protection): KEPT, score 0" in stdout
    assert "forced: the feed is marked always on this topic" in stdout
    code, stdout, _ = run("explain", "https://p/2")
    assert code == 0
    assert f"item {press}" in stdout
    assert "sc (Sovereign cloud): KEPT" in stdout
    assert "(matched 'cloud')" in stdout  # from the HTML content, tags stripped


def test_explain_says_when_the_decision_taken_at_fetch_time_differs(run: Run) -> None:
    from digest.models import TopicMatch
    from digest.store.items import save_topic_matches

    (item_id,) = store_items(("https://press.example/rss", "La CNIL sanctionne", "", "https://p/1"))
    store = open_store("sqlite:///var/digest.db")
    with store.begin() as conn:
        save_topic_matches(
            conn, item_id, [TopicMatch("dp", 0.0, False), TopicMatch("sc", 0, False)]
        )
    store.close()
    _, stdout, _ = run("explain", str(item_id))
    assert "dp (Data protection): KEPT, score 6" in stdout
    assert "at fetch time: dropped (score 0); the topic changed since" in stdout
    assert stdout.count("at fetch time") == 1


def test_explain_an_unknown_item_exits_2(run: Run) -> None:
    code, _, stderr = run("explain", "999")
    assert code == 2
    assert "no stored item with id or URL '999'" in stderr


@pytest.mark.parametrize("args", [(), ("42", "--title", "x")])
def test_explain_needs_exactly_one_of_item_or_title(run: Run, args: tuple[str, ...]) -> None:
    code, _, stderr = run("explain", *args)
    assert code == 2
    assert "explain: give a stored item" in stderr


# --------------------------------------------------------------------------- topics test


def test_topics_test_lists_what_each_topic_keeps(run: Run) -> None:
    store_items(
        ("https://press.example/rss", "La CNIL sanctionne", "", "https://p/1"),
        ("https://press.example/rss", "Météo du jour", "<p>Nuages.</p>", "https://p/2"),
    )
    code, stdout, _ = run("topics", "test", "--since", "7d")
    assert code == 0
    assert "2 stored items since" in stdout
    assert "dp: keeps 1" in stdout
    assert "La CNIL sanctionne" in stdout
    assert "sc: keeps 0" in stdout


def test_topics_test_against_another_config_lists_items_entering_and_leaving(
    run: Run, workdir: Path
) -> None:
    store_items(
        ("https://press.example/rss", "La CNIL sanctionne", "", "https://p/1"),
        (
            "https://press.example/rss",
            "Des cookies partout",
            "<p>Un article.</p>",
            "https://p/2",
        ),
    )
    draft = workdir / "draft.toml"
    # The draft drops "CNIL" and weighs "cookies" more.
    draft.write_text(
        CONFIG.replace(
            '{ term = "CNIL", weight = 3 }, "données personnelles", "cookies"',
            '{ term = "cookies", weight = 3 }',
        ),
        encoding="utf-8",
    )
    code, stdout, _ = run("topics", "test", "--against", str(draft))
    assert code == 0
    assert "dp: keeps 1 (was 1 with" in stdout
    assert "1 enter, 1 leave" in stdout
    lines = stdout.splitlines()
    assert any(line.startswith("  + ") and "La CNIL sanctionne" in line for line in lines)
    assert any(line.startswith("  - ") and "Des cookies partout" in line for line in lines)


def test_topics_test_rejects_a_bad_period(run: Run) -> None:
    code, _, stderr = run("topics", "test", "--since", "soon")
    assert code == 2
    assert "--since" in stderr


@pytest.mark.parametrize(
    "command",
    [("topics",), ("topics", "eval"), ("topics", "suggest"), ("topics", "test"), ("explain",)],
)
def test_every_command_has_help_with_an_example(run: Run, command: tuple[str, ...]) -> None:
    code, stdout, _ = run(*command, "--help")
    assert code == 0
    assert "Example: digest" in stdout


@pytest.mark.parametrize("ref", ["99999999999999999999999", "2147483648", "²", "0"])
def test_regression_explain_an_item_id_no_database_can_hold_is_one_line(run: Run, ref: str) -> None:
    # 99999999999999999999999 was an OverflowError traceback, "²" a ValueError one.
    code, _, err = run("explain", ref)
    assert code == 2
    assert f"explain: no stored item with id or URL {ref!r}" in err
    assert "Traceback" not in err
