"""The topic matcher: every configured topic compiled once into one Aho-Corasick automaton.

An item's title and text are folded once, scanned once, and each topic gets a scored,
explainable decision (``models.TopicMatch``): which terms matched where, vetoes, unmet groups.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import ahocorasick

from digest.errors import ConfigError
from digest.models import TermHit, TopicDef, TopicMatch
from digest.topics.text import expand_term, fold, inner_prefix_pattern

INCLUDE, EXCLUDE, REQUIRE = 0, 1, 2
#: Mentions of one term in the text beyond this many add nothing: a long article that repeats
#: a generic word is not more on topic for it.
TEXT_MENTION_CAP = 3


class _Ref(NamedTuple):
    """What one automaton key stands for: a term of a topic in a role."""

    topic: int
    role: int
    idx: int  # include term index, exclude term index, or require group index


@dataclass(slots=True)
class _Found:
    """Mentions of one term in an item: counts and the first folded form seen, per field."""

    title: int = 0
    text: int = 0
    title_key: str = ""
    text_key: str = ""

    def add(self, in_title: bool, n: int, key: str) -> None:
        if in_title:
            self.title += n
            self.title_key = self.title_key or key
        else:
            self.text += n
            self.text_key = self.text_key or key


@dataclass(slots=True)
class _Topic:
    tdef: TopicDef
    regexes: list[tuple[_Ref, re.Pattern[str]]] = field(default_factory=list)


def _parse_term(raw: str) -> tuple[str, str]:
    """-> (kind, body): kind is "regex", "exact" or "words"."""
    if raw.startswith("regex:"):
        return "regex", raw[len("regex:") :]
    if raw.startswith("="):
        return "exact", raw[1:]
    return "words", raw


class TopicMatcher:
    """Compiled topics; ``match`` returns one TopicMatch per topic, in config order."""

    def __init__(self, topics: Sequence[TopicDef]) -> None:
        self.topics: tuple[TopicDef, ...] = tuple(topics)
        self._topics = [_Topic(t) for t in self.topics]
        self._index = {t.id: i for i, t in enumerate(self.topics)}
        self._keys: list[str] = []
        self._key_refs: list[list[_Ref]] = []
        key_ids: dict[str, int] = {}
        automaton = ahocorasick.Automaton()
        for ti, topic in enumerate(self.topics):
            terms: list[tuple[_Ref, str, str]] = [
                (_Ref(ti, INCLUDE, i), t.text, f"topics.{topic.id}.include[{i}]")
                for i, t in enumerate(topic.include)
            ]
            terms += [
                (_Ref(ti, EXCLUDE, i), t, f"topics.{topic.id}.exclude[{i}]")
                for i, t in enumerate(topic.exclude)
            ]
            terms += [
                (_Ref(ti, REQUIRE, g), t, f"topics.{topic.id}.require[{g}]")
                for g, group in enumerate(topic.require)
                for t in group
            ]
            for ref, raw, where in terms:
                kind, body = _parse_term(raw)
                inner = inner_prefix_pattern(body, inflect=kind == "words")
                if kind != "regex" and inner is not None:
                    kind, body = "regex", inner
                if kind == "regex":
                    try:
                        rx = re.compile(body)
                    except re.error as exc:
                        raise ConfigError(f"{where}: invalid regex {body!r}: {exc}") from None
                    self._topics[ti].regexes.append((ref, rx))
                    continue
                forms = expand_term(body, inflect=kind == "words")
                if not forms:
                    raise ConfigError(f"{where}: term {raw!r} has no letters or digits")
                for folded, prefix in forms:
                    # Keys are padded with spaces (the folded text is too), so a match always
                    # starts and ends on a word boundary: "cloud" never matches "cloudy".
                    key = f" {folded}" if prefix else f" {folded} "
                    kid = key_ids.get(key)
                    if kid is None:
                        kid = key_ids[key] = len(self._keys)
                        self._keys.append(key)
                        self._key_refs.append([])
                        automaton.add_word(key, kid)
                    if ref not in self._key_refs[kid]:
                        self._key_refs[kid].append(ref)
        self._automaton = automaton
        self._has_keys = bool(self._keys)
        if self._has_keys:
            automaton.make_automaton()
        self._has_regex = any(t.regexes for t in self._topics)
        # Most items match nothing: their (identical) answer is built once.
        self._empty = tuple(
            self._decide(t, 0.0, (), (), set(), forced=False, out_of_scope=False)
            for t in self._topics
        )

    # ------------------------------------------------------------------ matching

    def _scan(self, folded: str) -> dict[int, int]:
        counts: dict[int, int] = {}
        if self._has_keys:
            for _end, kid in self._automaton.iter(folded):
                counts[kid] = counts.get(kid, 0) + 1
        return counts

    def match(
        self,
        title: str,
        text: str,
        *,
        scope: Sequence[str] = (),
        always: Sequence[str] = (),
    ) -> tuple[TopicMatch, ...]:
        """Score ``title`` + ``text`` against every topic.

        ``scope``: the feed may only feed these topics (empty: all); ``always``: topics the
        feed's items always belong to (kept whatever their score).
        """
        ft = f" {fold(title)} "
        fx = f" {fold(text)} "
        in_title = self._scan(ft)
        in_text = self._scan(fx)
        if not in_title and not in_text and not self._has_regex and not scope and not always:
            return self._empty

        found: dict[_Ref, _Found] = {}
        for counts, is_title in ((in_title, True), (in_text, False)):
            for kid, n in counts.items():
                key = self._keys[kid]
                for ref in self._key_refs[kid]:
                    entry = found.get(ref)
                    if entry is None:
                        entry = found[ref] = _Found()
                    entry.add(is_title, n, key)
        for t in self._topics:
            for ref, rx in t.regexes:
                for folded, is_title in ((ft, True), (fx, False)):
                    ms = [m.group(0) for m in rx.finditer(folded)]
                    if ms:
                        found.setdefault(ref, _Found()).add(is_title, len(ms), ms[0])

        results: list[TopicMatch] = []
        for ti, t in enumerate(self._topics):
            tid = t.tdef.id
            forced = tid in always
            out_of_scope = bool(scope) and tid not in scope and not forced
            score = 0.0
            hits: list[TermHit] = []
            vetoes: list[str] = []
            met: set[int] = set()
            for ref, f in found.items():
                if ref.topic != ti:
                    continue
                if ref.role == EXCLUDE:
                    vetoes.append(t.tdef.exclude[ref.idx])
                elif ref.role == REQUIRE:
                    met.add(ref.idx)
                else:
                    term = t.tdef.include[ref.idx]
                    if f.title:
                        score += term.weight * t.tdef.title_weight
                        hits.append(
                            TermHit(
                                term.text,
                                "title",
                                term.weight,
                                f.title,
                                original(title, f.title_key),
                            )
                        )
                    if f.text:
                        score += term.weight * min(f.text, TEXT_MENTION_CAP)
                        hits.append(
                            TermHit(
                                term.text, "text", term.weight, f.text, original(text, f.text_key)
                            )
                        )
            results.append(
                self._decide(t, score, tuple(hits), tuple(vetoes), met, forced, out_of_scope)
            )
        return tuple(results)

    @staticmethod
    def _decide(
        t: _Topic,
        score: float,
        hits: tuple[TermHit, ...],
        vetoes: tuple[str, ...],
        met: set[int],
        forced: bool,
        out_of_scope: bool,
    ) -> TopicMatch:
        unmet = tuple(g for i, g in enumerate(t.tdef.require) if i not in met)
        score = round(score, 4)
        passed = score >= t.tdef.threshold and score > 0 and not vetoes and not unmet
        kept = not out_of_scope and (forced or passed)
        return TopicMatch(
            topic_id=t.tdef.id,
            score=score,
            kept=kept,
            hits=hits,
            vetoes=vetoes,
            unmet_groups=unmet,
            forced=forced,
            out_of_scope=out_of_scope,
        )

    def topic(self, topic_id: str) -> TopicDef | None:
        i = self._index.get(topic_id)
        return None if i is None else self.topics[i]


# --------------------------------------------------------------------------- explain support


def _char_classes() -> dict[str, str]:
    classes: dict[str, set[str]] = {}
    for cp in (*range(0x20, 0x250), *range(0x1E00, 0x1F00)):
        ch = chr(cp)
        f = fold(ch)
        if len(f) == 1:
            classes.setdefault(f, {f}).add(ch)
    return {k: "[" + "".join(re.escape(c) for c in sorted(v)) + "]" for k, v in classes.items()}


_CLASSES = _char_classes()
_ORIGINAL_RX: dict[str, re.Pattern[str] | None] = {}


def original(text: str, key: str) -> str:
    """The words of ``text`` that folded to ``key``, as they stand ("Données personnelles")."""
    rx = _ORIGINAL_RX.get(key, ...)
    if rx is ...:
        rx = _original_pattern(key)
        if len(_ORIGINAL_RX) < 20_000:  # keys come from config and regex hits: bounded
            _ORIGINAL_RX[key] = rx
    if rx is not None:
        m = rx.search(text)
        if m:
            return m.group(0)
    return key.strip()


def _original_pattern(key: str) -> re.Pattern[str] | None:
    prefix = not key.endswith(" ")
    words = key.split()
    if not words:
        return None
    parts = ["".join(_CLASSES.get(c, re.escape(c)) for c in w) for w in words]
    body = r"[\W_]+".join(parts) + (r"\w*" if prefix else "")
    try:
        return re.compile(rf"(?<!\w){body}(?!\w)")
    except re.error:
        return None
