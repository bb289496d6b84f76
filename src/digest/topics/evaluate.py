"""Measuring topics against labeled items (precision/recall/F1) and the editors' pinned examples."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from digest.errors import UsageError
from digest.models import TopicDef, TopicMatch
from digest.topics.matcher import TopicMatcher


@dataclass(frozen=True)
class EvalRow:
    """One labeled item: ``labels`` are the topic ids it belongs to."""

    title: str
    text: str
    labels: frozenset[str]
    line: int = 0
    lang: str | None = None


@dataclass(frozen=True)
class TopicScores:
    precision: float
    recall: float
    f1: float
    tp: int
    fp: int
    fn: int

    def as_dict(self) -> dict[str, float | int]:
        return {
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
        }


@dataclass(frozen=True)
class Misclassified:
    """A row the topic got wrong: ``expected`` is the label, the match says what happened."""

    row: EvalRow
    topic_id: str
    expected: bool
    match: TopicMatch


@dataclass(frozen=True)
class EvalReport:
    topics: dict[str, TopicScores]
    misclassified: list[Misclassified] = field(default_factory=list)
    rows: int = 0

    def as_json(self) -> dict[str, dict[str, dict[str, float | int]]]:
        return {"topics": {tid: s.as_dict() for tid, s in self.topics.items()}}


def _scores(tp: int, fp: int, fn: int) -> TopicScores:
    # With nothing predicted (or nothing to find), a topic that made no mistake scores 1.
    precision = tp / (tp + fp) if tp + fp else (1.0 if fn == 0 else 0.0)
    recall = tp / (tp + fn) if tp + fn else (1.0 if fp == 0 else 0.0)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return TopicScores(round(precision, 4), round(recall, 4), round(f1, 4), tp, fp, fn)


def evaluate(matcher: TopicMatcher, rows: Iterable[EvalRow]) -> EvalReport:
    """Run every configured topic on each row's title + text and compare with its labels."""
    counts = {t.id: [0, 0, 0] for t in matcher.topics}
    wrong: list[Misclassified] = []
    n = 0
    for row in rows:
        n += 1
        for m in matcher.match(row.title, row.text):
            expected = m.topic_id in row.labels
            c = counts[m.topic_id]
            if m.kept and expected:
                c[0] += 1
            elif m.kept:
                c[1] += 1
                wrong.append(Misclassified(row, m.topic_id, False, m))
            elif expected:
                c[2] += 1
                wrong.append(Misclassified(row, m.topic_id, True, m))
    return EvalReport({tid: _scores(*c) for tid, c in counts.items()}, wrong, n)


def parse_eval_lines(lines: Iterable[str], source: str) -> list[EvalRow]:
    """JSONL rows ``{"title", "summary", "lang", "labels"}`` (other keys ignored).

    A line that is not such an object raises UsageError naming ``source`` and the line number.
    """
    rows: list[EvalRow] = []
    for no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{source}: line {no}: not valid JSON ({exc.msg})") from None
        if not isinstance(obj, dict):
            raise UsageError(f"{source}: line {no}: expected a JSON object")
        title, summary, labels = obj.get("title"), obj.get("summary", ""), obj.get("labels")
        if not isinstance(title, str):
            raise UsageError(f"{source}: line {no}: 'title' must be a string")
        if not isinstance(summary, str):
            raise UsageError(f"{source}: line {no}: 'summary' must be a string")
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            raise UsageError(f"{source}: line {no}: 'labels' must be a list of topic ids")
        lang = obj.get("lang")
        rows.append(
            EvalRow(title, summary, frozenset(labels), no, lang if isinstance(lang, str) else None)
        )
    return rows


def check_examples(matcher: TopicMatcher, topic_defs: Sequence[TopicDef]) -> list[str]:
    """One line per ``[[topics.<id>.examples]]`` entry that no longer holds (empty: all hold)."""
    failures: list[str] = []
    for tdef in topic_defs:
        for ex in tdef.examples:
            m = next((m for m in matcher.match(ex.title, ex.text) if m.topic_id == tdef.id), None)
            if m is None:
                failures.append(f"topics.{tdef.id}.examples: {ex.title!r}: topic not compiled")
            elif m.kept != ex.expect:
                want, got = ("kept", "dropped") if ex.expect else ("dropped", "kept")
                why = _why(m, tdef)
                failures.append(
                    f"topics.{tdef.id}.examples: {ex.title!r} should be {want} but is {got} ({why})"
                )
    return failures


def _why(m: TopicMatch, tdef: TopicDef) -> str:
    parts = [f"score {m.score:g} / threshold {tdef.threshold:g}"]
    if m.vetoes:
        parts.append("vetoed by " + ", ".join(repr(v) for v in m.vetoes))
    if m.unmet_groups:
        parts.append(f"{len(m.unmet_groups)} require group(s) unmet")
    return "; ".join(parts)
