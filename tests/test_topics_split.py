"""The labeled topic items: well formed, and the held-out set kept apart from everything tuned.

tests/data/topics/tuning.jsonl (the old dev set plus ~60 % of the collected items) is what rules
and models may be fitted to; heldout.jsonl is only ever measured (docs/topics-guideline.md).
"""

from __future__ import annotations

import json
import re
import tomllib
import unicodedata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data" / "topics"
TOPICS = {"sovereign_cloud", "data_protection"}


def _rows(name: str) -> list[dict[str, object]]:
    lines = (DATA / name).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def _norm(title: object) -> str:
    text = unicodedata.normalize("NFKD", str(title).lower())
    text = "".join(c for c in text if not unicodedata.combining(c))
    return re.sub(r"[^a-z0-9]+", " ", text).strip()


TUNING, HELDOUT = _rows("tuning.jsonl"), _rows("heldout.jsonl")


def test_the_split_is_about_sixty_forty_and_both_languages_are_held_out() -> None:
    share = len(HELDOUT) / (len(HELDOUT) + len(TUNING))
    assert 0.35 <= share <= 0.45
    for lang in ("fr", "en"):
        for labels in ([], ["sovereign_cloud"], ["data_protection"]):
            held = [r for r in HELDOUT if r["lang"] == lang and sorted(r["labels"]) == labels]
            assert len(held) >= 20, (lang, labels)


def test_no_held_out_title_or_url_appears_in_the_tuning_set() -> None:
    tuning_titles = {_norm(r["title"]) for r in TUNING}
    tuning_urls = {r["url"] for r in TUNING if r.get("url")}
    for row in HELDOUT:
        assert _norm(row["title"]) not in tuning_titles, row["title"]
        assert row["url"] not in tuning_urls, row["url"]


def test_the_config_examples_do_not_quote_held_out_items() -> None:
    config = REPO / "config" / "topics.toml"
    text = _norm(config.read_text(encoding="utf-8"))
    topics = tomllib.loads(config.read_text(encoding="utf-8"))["topics"]
    example_titles = {_norm(ex["title"]) for t in topics.values() for ex in t.get("examples", [])}
    for row in HELDOUT:
        title = _norm(row["title"])
        assert title not in example_titles, row["title"]
        assert title not in text, row["title"]


@pytest.mark.parametrize("name", ["labeled-en.jsonl", "labeled-fr.jsonl"])
def test_collected_items_are_real_published_headlines_with_their_source(name: str) -> None:
    rows = _rows(name)
    assert len(rows) >= 250
    urls_titles = set()
    for row in rows:
        assert isinstance(row["title"], str)
        assert row["title"].strip()
        assert isinstance(row["summary"], str)
        assert len(row["summary"]) <= 400, row["title"]
        assert row["lang"] in ("fr", "en")
        assert set(row["labels"]) <= TOPICS
        assert row["source"], row["title"]
        assert str(row["url"]).startswith("http"), row["title"]
        assert re.fullmatch(r"\d{4}(-\d\d(-\d\d)?)?", str(row["date"])), row["title"]
        assert 2013 <= int(str(row["date"])[:4]) <= 2026, row["title"]
        key = (row["url"], _norm(row["title"]))
        assert key not in urls_titles, row["title"]
        urls_titles.add(key)


def test_every_collected_item_is_in_exactly_one_set() -> None:
    collected = {
        (r["url"], _norm(r["title"]))
        for n in ("labeled-en.jsonl", "labeled-fr.jsonl")
        for r in _rows(n)
    }
    split = [(r.get("url"), _norm(r["title"])) for r in TUNING + HELDOUT]
    assert len(split) == len(set(split))
    assert collected <= set(split)
