"""Measuring topics against labeled items (precision/recall/F1 per scorer) and the pinned examples.

Scorers: the editors' rules, an optional learned scorer (a second opinion giving probabilities),
and their combination (kept by the rules, or rated at least the floor by the learned scorer).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

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
    tn: int = 0

    def as_dict(self, *, tn: bool = False) -> dict[str, float | int]:
        figures: dict[str, float | int] = {
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
        }
        if tn:
            figures["tn"] = self.tn
        return figures


class LearnedScorer(Protocol):
    """A second opinion on an item: the probability that it belongs to each topic it knows."""

    name: str

    def probabilities(self, title: str, text: str) -> Mapping[str, float]: ...


#: The learned scorer keeps an item on its own at or above this probability ("learned_floor").
DEFAULT_FLOOR = 0.9
SCORERS = ("rules", "learned", "combined")


@dataclass(frozen=True)
class Misclassified:
    """A row the topic got wrong: ``expected`` is the label, the match says what happened."""

    row: EvalRow
    topic_id: str
    expected: bool
    match: TopicMatch


@dataclass(frozen=True)
class EvalReport:
    """``topics``: the figures of the config's actual decisions; ``scorers``: each scorer's own
    (``None`` for a scorer that is not available, with the reason in ``learned_status``)."""

    topics: dict[str, TopicScores]
    misclassified: list[Misclassified] = field(default_factory=list)
    rows: int = 0
    scorers: dict[str, dict[str, TopicScores] | None] = field(default_factory=dict)
    learned_status: str = ""
    #: Per topic, which scorer the config's actual decisions come from ("rules" or "combined").
    deciding: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, object]:
        scorers: dict[str, object] = {
            name: None if figs is None else {t: s.as_dict(tn=True) for t, s in figs.items()}
            for name, figs in self.scorers.items()
        }
        return {
            "topics": {tid: s.as_dict() for tid, s in self.topics.items()},
            "scorers": scorers,
            "learned_status": self.learned_status,
            "deciding": dict(self.deciding),
            "rows": self.rows,
        }


def _scores(tp: int, fp: int, fn: int, tn: int = 0) -> TopicScores:
    # With nothing predicted (or nothing to find), a topic that made no mistake scores 1.
    precision = tp / (tp + fp) if tp + fp else (1.0 if fn == 0 else 0.0)
    recall = tp / (tp + fn) if tp + fn else (1.0 if fp == 0 else 0.0)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return TopicScores(round(precision, 4), round(recall, 4), round(f1, 4), tp, fp, fn, tn)


def scores(kept: Sequence[bool], want: Sequence[bool]) -> TopicScores:
    """One topic's figures from its decisions and the labels, pair by pair."""
    c = [0, 0, 0, 0]
    for k, w in zip(kept, want, strict=True):
        _count(c, k, w)
    return _scores(*c)


def _count(c: list[int], kept: bool, expected: bool) -> None:
    c[(0 if expected else 1) if kept else (2 if expected else 3)] += 1


def _all_probabilities(
    learned: LearnedScorer, rows: Sequence[EvalRow]
) -> list[Mapping[str, float]]:
    predict = getattr(learned, "predict", None)
    if callable(predict):  # a batch at once (the shipped model scores thousands a second)
        got: list[Mapping[str, float]] = predict([(r.title, r.text) for r in rows])
        return got
    return [learned.probabilities(r.title, r.text) for r in rows]


def evaluate(
    matcher: TopicMatcher,
    rows: Iterable[EvalRow],
    *,
    learned: LearnedScorer | None = None,
    floors: Mapping[str, float] | None = None,
    keep: frozenset[str] | None = None,
) -> EvalReport:
    """Run every configured topic on each row's title + text and compare with its labels.

    ``learned``: the optional second opinion; it keeps an item the rules drop at its topic's
    ``learned_floor`` (or ``floors[topic]``) or above, unless an exclude term vetoes it.
    ``keep``: topics whose actual decisions are the combination (default: those configured
    with ``learned = "keep"``); the others are decided by the rules alone.
    """
    from digest.topics.learned import learned_keeps

    rows = list(rows)
    ids = [t.id for t in matcher.topics]
    floors = floors or {}
    topics = [replace(t, learned_floor=floors.get(t.id, t.learned_floor)) for t in matcher.topics]
    if keep is None:
        keep = frozenset(t.id for t in topics if t.learned == "keep")
    all_probs = _all_probabilities(learned, rows) if learned is not None else [{}] * len(rows)
    known = {tid for p in all_probs for tid in p} & set(ids)
    counts = {name: {tid: [0, 0, 0, 0] for tid in ids} for name in SCORERS}
    actual = {tid: [0, 0, 0, 0] for tid in ids}
    wrong: list[Misclassified] = []
    for row, probs in zip(rows, all_probs, strict=True):
        for tdef, m in zip(topics, matcher.match(row.title, row.text), strict=True):
            tid = m.topic_id
            expected = tid in row.labels
            prob = probs.get(tid)
            by_model = prob is not None and prob >= tdef.learned_floor
            combined = m.kept or learned_keeps(tdef, m, prob)
            _count(counts["rules"][tid], m.kept, expected)
            _count(counts["learned"][tid], by_model, expected)
            _count(counts["combined"][tid], combined, expected)
            kept = combined if tid in keep else m.kept
            _count(actual[tid], kept, expected)
            if kept != expected:
                if kept and not m.kept:
                    m = replace(m, kept=True, learned=prob)
                wrong.append(Misclassified(row, tid, expected, m))
    scorers: dict[str, dict[str, TopicScores] | None] = {
        name: {tid: _scores(*c) for tid, c in counts[name].items()} for name in SCORERS
    }
    if learned is None or not known:
        scorers["learned"] = None
        status = "none: no learned model is installed for these topics, so combined = rules"
    else:
        scorers["learned"] = {
            tid: f for tid, f in (scorers["learned"] or {}).items() if tid in known
        }
        floors_said = ", ".join(f"{t.id} {t.learned_floor:g}" for t in topics if t.id in known)
        status = f"{learned.name}: kept at probability >= its topic's floor ({floors_said})"
    return EvalReport(
        {tid: _scores(*c) for tid, c in actual.items()},
        wrong,
        len(rows),
        scorers,
        status,
        {tid: "combined" if tid in keep and tid in known else "rules" for tid in ids},
    )


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


def check_examples(
    matcher: TopicMatcher, topic_defs: Sequence[TopicDef], learned: LearnedScorer | None = None
) -> list[str]:
    """One line per ``[[topics.<id>.examples]]`` entry that no longer holds (empty: all hold).

    With ``learned``, the decisions are the config's actual ones (the learned scorer keeping
    items for topics with ``learned = "keep"``)."""
    from digest.topics.learned import combine

    failures: list[str] = []
    for tdef in topic_defs:
        for ex in tdef.examples:
            ms = matcher.match(ex.title, ex.text)
            if learned is not None:
                ms = combine(matcher.topics, ms, learned.probabilities(ex.title, ex.text))
            m = next((m for m in ms if m.topic_id == tdef.id), None)
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
    if m.learned is not None:
        parts.append(f"kept by the learned scorer at {m.learned:.2f}")
    return "; ".join(parts)
