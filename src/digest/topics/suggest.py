"""Concrete edits to one topic, mined from the items it gets wrong, with their effect.

Candidates come from the *tuning* rows (``suggest``) or from the editors' decisions on the desk
(``suggest_from_decisions``: an added item the rules dropped is a miss, a dropped item they kept
is wrongly kept): the words of missed items, the terms behind wrongly kept ones. Each is applied
to a copy of the topic, compiled, measured on the rows it was mined from (to rank it) and on the
held-out rows (to show the editor what it would really change).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from itertools import pairwise

from digest.models import Term, TopicDef, TopicMatch
from digest.topics.evaluate import EvalRow, TopicScores, _scores
from digest.topics.matcher import TopicMatcher  # the type; built by the caller's factory
from digest.topics.text import fold

# Words that never make a useful term on their own (French and English function words, and the
# vocabulary every news item carries).
_STOP = frozenset(
    re.findall(
        r"\S+",
        """
    a an and are as at be been but by can could de des du en est et for from had has have he
    her his how i if in into is it its la le les leur mais more most no not of on or our ou par
    pas plus pour qu que qui said sa says se ses she son sont sur than that the their them then
    there these they this those to un une was we were what when which while who why will with
    would you your after avant apres over under new nouveau nouvelle year years ans million
    millions billion milliards percent euros dollars week today monday tuesday wednesday
    thursday friday about also just only all any some such very been being its their than then
    there here
        """,
    )
)
_WORD = re.compile(r"[a-z][a-z0-9]+")


@dataclass(frozen=True)
class Effect:
    """What one edit changes on a set of rows: figures before and after, and the flipped rows."""

    before: TopicScores
    after: TopicScores
    gained: tuple[str, ...]  # titles now correctly kept
    lost: tuple[str, ...]  # titles now wrongly kept, or no longer kept though labeled

    @property
    def recall_gain(self) -> float:
        return round(self.after.recall - self.before.recall, 4)

    @property
    def precision_change(self) -> float:
        return round(self.after.precision - self.before.precision, 4)


@dataclass(frozen=True)
class Suggestion:
    """One proposed edit, as TOML the editor can paste, with its effect on each set."""

    kind: str  # "add term", "relax require group", "lower weight"
    summary: str
    toml: str
    tuning: Effect
    heldout: Effect | None
    #: Its effect on the editors' decisions it was mined from (``suggest_from_decisions``).
    decisions: Effect | None = None


#: Builds a matcher for topic definitions: ``digest.pipeline.wiring.make_matcher``.
Compile = Callable[[Sequence[TopicDef]], TopicMatcher]


def _decisions(compile_: Compile, tdef: TopicDef, rows: Sequence[EvalRow]) -> list[TopicMatch]:
    matcher = compile_([tdef])
    return [matcher.match(r.title, r.text)[0] for r in rows]


def _effect(
    rows: Sequence[EvalRow], topic_id: str, before: list[TopicMatch], after: list[TopicMatch]
) -> Effect:
    def counts(ms: list[TopicMatch]) -> TopicScores:
        c = [0, 0, 0, 0]
        for r, m in zip(rows, ms, strict=True):
            expected = topic_id in r.labels
            c[(0 if expected else 1) if m.kept else (2 if expected else 3)] += 1
        return _scores(*c)

    gained: list[str] = []
    lost: list[str] = []
    for r, b, a in zip(rows, before, after, strict=True):
        if b.kept == a.kept:
            continue
        right = a.kept == (topic_id in r.labels)
        (gained if right else lost).append(r.title)
    return Effect(counts(before), counts(after), tuple(gained), tuple(lost))


def _phrases(title: str) -> set[str]:
    """Folded words and two-word phrases of a title that could stand as a term."""
    words = _WORD.findall(fold(title))
    out = {w for w in words if len(w) >= 4 and w not in _STOP}
    for a, b in pairwise(words):
        if a not in _STOP and b not in _STOP and len(a) + len(b) >= 7:
            out.add(f"{a} {b}")
    return out


def _toml_term(text: str, weight: float) -> str:
    return f'{{ term = "{text}", weight = {weight:g} }}'


Candidate = tuple[str, str, str, TopicDef]  # kind, summary, toml, the edited topic


def _candidates(
    tdef: TopicDef,
    missed: Sequence[tuple[EvalRow, TopicMatch]],
    wrong: Sequence[tuple[EvalRow, TopicMatch]],
    *,
    limit: int,
    min_support: int,
    missed_as: str = "missed titles",
    wrong_as: str = "wrongly kept items",
) -> list[Candidate]:
    """Edits mined from ``missed`` and wrongly kept (``wrong``) rows with their decisions: a
    phrase of at least ``min_support`` missed titles as a term (and require-group member), and
    the term behind at least ``min_support`` wrongly kept items with its weight halved."""
    candidates: list[Candidate] = []
    existing = {fold(t.text) for t in tdef.include}
    support = Counter(p for r, _m in missed for p in _phrases(r.title))
    weight = round(tdef.threshold / max(tdef.title_weight, 1.0), 2)
    for phrase, n in support.most_common():
        if n < min_support or phrase in existing:
            continue
        # Add the phrase as a term; where missed items lack a require group, add it there too.
        unmet = {
            i
            for r, m in missed
            if phrase in _phrases(r.title)
            for i, g in enumerate(tdef.require)
            if g in m.unmet_groups
        }
        require = tuple((*g, phrase) if i in unmet else g for i, g in enumerate(tdef.require))
        changed = replace(tdef, include=(*tdef.include, Term(phrase, weight)), require=require)
        groups = (
            f" and to require group {', '.join(str(i + 1) for i in sorted(unmet))}" if unmet else ""
        )
        candidates.append(
            (
                "add term",
                f"add {phrase!r} (in {n} {missed_as}) with weight {weight:g}{groups}",
                f"include += {_toml_term(phrase, weight)}"
                + (
                    f'; require[{", ".join(str(i) for i in sorted(unmet))}] += "{phrase}"'
                    if unmet
                    else ""
                ),
                changed,
            )
        )
        if unmet:  # the same words as a require-group member only, weight unchanged
            candidates.append(
                (
                    "relax require group",
                    f"accept {phrase!r} in require group "
                    f"{', '.join(str(i + 1) for i in sorted(unmet))} (no new weight)",
                    f'require[{", ".join(str(i) for i in sorted(unmet))}] += "{phrase}"',
                    replace(tdef, require=require),
                )
            )
        if len(candidates) >= 3 * limit:
            break
    # A term behind several wrongly kept items: halve its weight.
    blame = Counter(
        max(
            m.hits, key=lambda h: h.weight * (tdef.title_weight if h.where == "title" else h.count)
        ).term
        for _r, m in wrong
        if m.hits
    )
    for term, n in blame.most_common(limit):
        if n < min_support:
            break
        old = next((t.weight for t in tdef.include if t.text == term), None)
        if old is None:  # a hit of a term the topic no longer lists
            continue
        include = tuple(
            Term(t.text, round(t.weight / 2, 3)) if t.text == term else t for t in tdef.include
        )
        candidates.append(
            (
                "lower weight",
                f"lower {term!r} from {old:g} to {old / 2:g} (it carries {n} {wrong_as})",
                f"include: {_toml_term(term, round(old / 2, 3))}",
                replace(tdef, include=include),
            )
        )
    return candidates


def _wrong(
    tdef: TopicDef, rows: Sequence[EvalRow], decided: Sequence[TopicMatch]
) -> tuple[list[tuple[EvalRow, TopicMatch]], list[tuple[EvalRow, TopicMatch]]]:
    """The (missed, wrongly kept) rows of ``rows`` under the decisions ``decided``."""
    pairs = list(zip(rows, decided, strict=True))
    missed = [(r, m) for r, m in pairs if tdef.id in r.labels and not m.kept]
    wrong = [(r, m) for r, m in pairs if tdef.id not in r.labels and m.kept]
    return missed, wrong


def suggest(
    tdef: TopicDef,
    tuning: Sequence[EvalRow],
    heldout: Sequence[EvalRow] = (),
    *,
    compile: Compile,
    limit: int = 10,
    min_support: int = 2,
) -> list[Suggestion]:
    """Up to ``limit`` edits to ``tdef`` that improve its F1 on ``tuning``, best first.

    ``compile`` builds the trial matchers (``digest.pipeline.wiring.make_matcher``: matchers are
    constructed in the wiring module only).

    A term is proposed only when it occurs in at least ``min_support`` missed tuning items.
    """
    base_t = _decisions(compile, tdef, tuning)
    base_h = _decisions(compile, tdef, heldout) if heldout else []
    missed, wrong = _wrong(tdef, tuning, base_t)
    candidates = _candidates(tdef, missed, wrong, limit=limit, min_support=min_support)
    out: list[Suggestion] = []
    for kind, summary, toml, changed in candidates:
        eff_t = _effect(tuning, tdef.id, base_t, _decisions(compile, changed, tuning))
        if eff_t.after.f1 <= eff_t.before.f1:
            continue
        eff_h = (
            _effect(heldout, tdef.id, base_h, _decisions(compile, changed, heldout))
            if heldout
            else None
        )
        out.append(Suggestion(kind, summary, toml, eff_t, eff_h))
    out.sort(key=lambda s: (s.tuning.before.f1 - s.tuning.after.f1, s.summary))
    return out[:limit]


def suggest_from_decisions(
    tdef: TopicDef,
    decisions: Sequence[EvalRow],
    tuning: Sequence[EvalRow],
    heldout: Sequence[EvalRow] = (),
    *,
    compile: Compile,
    limit: int = 10,
    min_support: int = 1,
) -> list[Suggestion]:
    """Up to ``limit`` edits to ``tdef`` mined from the editors' ``decisions`` on it (rows
    labeled with the topic when the editor added, pinned or kept the item, unlabeled when she
    dropped it), best first: those that set right more decisions than they break, ranked by
    that number, then by F1 gained on ``tuning``; each measured on ``heldout`` too.

    Each decision is an editor's deliberate act, so one supports a term (``min_support`` 1);
    the held-out figures show whether it generalizes.
    """
    base_d = _decisions(compile, tdef, decisions)
    base_t = _decisions(compile, tdef, tuning)
    base_h = _decisions(compile, tdef, heldout) if heldout else []
    missed, wrong = _wrong(tdef, decisions, base_d)
    candidates = _candidates(
        tdef,
        missed,
        wrong,
        limit=limit,
        min_support=min_support,
        missed_as="titles editors added",
        wrong_as="items editors dropped",
    )
    out: list[Suggestion] = []
    for kind, summary, toml, changed in candidates:
        eff_d = _effect(decisions, tdef.id, base_d, _decisions(compile, changed, decisions))
        if len(eff_d.gained) <= len(eff_d.lost):
            continue
        eff_t = _effect(tuning, tdef.id, base_t, _decisions(compile, changed, tuning))
        eff_h = (
            _effect(heldout, tdef.id, base_h, _decisions(compile, changed, heldout))
            if heldout
            else None
        )
        out.append(Suggestion(kind, summary, toml, eff_t, eff_h, decisions=eff_d))
    out.sort(
        key=lambda s: (
            len(s.decisions.lost) - len(s.decisions.gained) if s.decisions else 0,
            s.tuning.before.f1 - s.tuning.after.f1,
            s.summary,
        )
    )
    return out[:limit]
