"""The topics' word forms are cached in ``[storage] cache_dir``: a matcher compiled again (the
next `digest` command) reads them instead of loading simplemma's dictionaries, and matches
exactly as one compiled without the cache. A cache that is missing, foreign, outdated, broken
or cannot be written only costs time."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from digest.config import Settings, parse_settings
from digest.pipeline import wordforms
from digest.pipeline.wiring import make_matcher
from digest.topics import text

TOPICS = {
    "cloud": {"title": "Cloud", "include": ["cloud souverain", "sovereign hosting provider"]},
    "privacy": {"title": "Privacy", "include": ["données personnelles", "data protection"]},
}
SAMPLES = [
    ("Les clouds souverains gagnent du terrain", ""),
    ("Sovereign hosting providers under scrutiny", "A data protection authority said so."),
    ("La donnée personnelle des patients", "Hébergement des données personnelles de santé."),
    ("Weather report", "Sunny with a chance of rain."),
]


@pytest.fixture(autouse=True)
def fresh_forms(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts as a new process would: no word forms known or computed."""
    monkeypatch.setattr(text, "_KNOWN_FORMS", {})
    monkeypatch.setattr(text, "_COMPUTED_FORMS", {})
    text.inflections.cache_clear()
    yield
    text.inflections.cache_clear()


def _settings(cache: Path) -> Settings:
    return parse_settings({"storage": {"cache_dir": str(cache)}, "topics": TOPICS}, "t.toml")


def _new_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(text, "_KNOWN_FORMS", {})
    monkeypatch.setattr(text, "_COMPUTED_FORMS", {})
    text.inflections.cache_clear()
    text._lemmas.cache_clear()


def _verdicts(settings: Settings) -> list[list[tuple[str, float, bool]]]:
    matcher = make_matcher(settings)
    return [
        [(m.topic_id, m.score, m.kept) for m in matcher.match(title, body)]
        for title, body in SAMPLES
    ]


def _lemmatize_forbidden(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    asked: list[str] = []

    def lemmatize(word: str, *args: Any, **kwargs: Any) -> str:
        asked.append(word)
        return word

    monkeypatch.setattr(text.simplemma, "lemmatize", lemmatize)
    return asked


def test_a_matcher_compiled_again_takes_its_word_forms_from_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings(tmp_path / "cache")
    first = _verdicts(settings)
    saved = json.loads((tmp_path / "cache" / wordforms.FILE).read_text(encoding="utf-8"))
    assert saved["version"] == text.forms_version()
    assert "personnelle" in saved["forms"]["personnelles"]
    _new_process(monkeypatch)
    asked = _lemmatize_forbidden(monkeypatch)
    assert _verdicts(settings) == first
    assert asked == []
    # Without the file, the same compile asks simplemma.
    (tmp_path / "cache" / wordforms.FILE).unlink()
    _new_process(monkeypatch)
    _verdicts(settings)
    assert "personnelles" in asked


def test_a_new_term_adds_its_words_to_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    make_matcher(_settings(cache))
    _new_process(monkeypatch)
    more = {**TOPICS, "law": {"title": "Law", "include": ["tribunal administratif"]}}
    make_matcher(parse_settings({"storage": {"cache_dir": str(cache)}, "topics": more}, "t.toml"))
    forms = json.loads((cache / wordforms.FILE).read_text(encoding="utf-8"))["forms"]
    assert {"personnelles", "souverain", "tribunal", "administratif"} <= set(forms)


def test_compiling_again_with_nothing_new_leaves_the_file_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemon compiles the topics every cycle: the file is written only when words change."""
    settings = _settings(tmp_path / "cache")
    make_matcher(settings)
    path = tmp_path / "cache" / wordforms.FILE
    written = (path.stat().st_ino, path.stat().st_mtime_ns)
    make_matcher(settings)  # the same process, next cycle
    _new_process(monkeypatch)
    make_matcher(settings)  # a new process: every word from the file
    assert (path.stat().st_ino, path.stat().st_mtime_ns) == written


@pytest.mark.parametrize(
    "content",
    [
        "not json at all {",
        json.dumps({"version": "simplemma 0.0; rules 0", "forms": {"cloud": ["wrong"]}}),
        json.dumps(["a", "list"]),
        json.dumps({"version": "?", "forms": {"cloud": "not a list"}}),
    ],
    ids=["broken", "outdated", "foreign", "ill-typed"],
)
def test_a_cache_that_cannot_be_trusted_is_computed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str
) -> None:
    settings = _settings(tmp_path / "cache")
    expected = _verdicts(settings)
    _new_process(monkeypatch)
    (tmp_path / "cache" / wordforms.FILE).write_text(content, encoding="utf-8")
    assert _verdicts(settings) == expected
    saved = json.loads((tmp_path / "cache" / wordforms.FILE).read_text(encoding="utf-8"))
    assert saved["version"] == text.forms_version()  # rewritten whole, under this version


def test_an_outdated_cache_is_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    stale = {"version": "simplemma 0.0; rules 0", "forms": {"souverain": ["souverain"]}}
    (cache / wordforms.FILE).write_text(json.dumps(stale), encoding="utf-8")
    matcher = make_matcher(_settings(cache))
    matches = matcher.match("Des clouds souverains", "")
    assert [m.topic_id for m in matches if m.kept] == ["cloud"]


def test_a_cache_folder_that_cannot_be_written_costs_nothing_but_time(tmp_path: Path) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("in the way", encoding="utf-8")
    matcher = make_matcher(_settings(blocked / "cache"))
    matches = matcher.match("Sovereign hosting providers", "")
    assert [m.topic_id for m in matches if m.kept] == ["cloud"]


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(forms=_json)
def test_whatever_the_cache_file_holds_only_lists_of_words_are_taken(
    tmp_path: Path, forms: object
) -> None:
    (tmp_path / wordforms.FILE).write_text(
        json.dumps({"version": text.forms_version(), "forms": forms}), encoding="utf-8"
    )
    text._KNOWN_FORMS.clear()
    wordforms.load(tmp_path)
    for word, values in text._KNOWN_FORMS.items():
        assert isinstance(word, str)
        assert values
        assert all(isinstance(v, str) for v in values)
