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
from digest.topics.text import expand_term, fold, fold_spaced, inner_prefix_pattern

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
    """Mentions of one term in an item, per field, and where the first one was."""

    title: int = 0
    text: int = 0
    #: (automaton key, end index in the spaced folded field) or (regex match, -1)
    title_first: tuple[str, int] = ("", -1)
    text_first: tuple[str, int] = ("", -1)

    def add(self, in_title: bool, n: int, first: tuple[str, int]) -> None:
        if in_title:
            if not self.title:
                self.title_first = first
            self.title += n
        else:
            if not self.text:
                self.text_first = first
            self.text += n


_UNSET = TopicMatch("", 0.0, False)


@dataclass(slots=True)
class _Topic:
    tdef: TopicDef
    #: (ref, pattern, a literal every match contains: the regex only runs when it is present)
    regexes: list[tuple[_Ref, re.Pattern[str], str]] = field(default_factory=list)
    #: The decision for an item with no term of this topic (shared: most items).
    empty: TopicMatch = _UNSET


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
                    self._topics[ti].regexes.append((ref, rx, required_literal(rx)))
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
        for t in self._topics:
            t.empty = self._decide(t, 0.0, (), (), set(), forced=False, out_of_scope=False)
        self._empty = tuple(t.empty for t in self._topics)

    # ------------------------------------------------------------------ matching

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
        ft = f" {fold_spaced(title)} "
        fx = f" {fold_spaced(text)} "
        # One pass over both fields: no key contains "\0", so none spans the two.
        split = len(ft)
        first_seen: dict[int, int] = {}  # key id -> end of its first occurrence
        counts: dict[int, int] = {}
        if self._has_keys:
            for end, kid in self._automaton.iter(f"{ft}\0{fx}"):
                if end >= split:
                    kid = -kid - 1  # text occurrences get negative ids
                if kid in counts:
                    counts[kid] += 1
                else:
                    counts[kid] = 1
                    first_seen[kid] = end
        found: dict[_Ref, _Found] = {}
        for kid, n in counts.items():
            in_title = kid >= 0
            real = kid if in_title else -kid - 1
            first = (self._keys[real], first_seen[kid] if in_title else first_seen[kid] - split - 1)
            for ref in self._key_refs[real]:
                entry = found.get(ref)
                if entry is None:
                    entry = found[ref] = _Found()
                entry.add(in_title, n, first)
        if self._has_regex:
            self._scan_regexes(ft, fx, found)
        if not found and not scope and not always:
            return self._empty  # most items: nothing to explain, the answer is shared

        by_topic: list[list[tuple[_Ref, _Found]]] = [[] for _ in self._topics]
        for ref, f in found.items():
            by_topic[ref.topic].append((ref, f))
        results: list[TopicMatch] = []
        for t, topic_found in zip(self._topics, by_topic, strict=True):
            tid = t.tdef.id
            forced = tid in always
            out_of_scope = bool(scope) and tid not in scope and not forced
            if not topic_found and not forced and not out_of_scope:
                results.append(t.empty)
                continue
            score = 0.0
            hits: list[TermHit] = []
            vetoes: list[str] = []
            met: set[int] = set()
            for ref, f in topic_found:
                if ref.role == EXCLUDE:
                    vetoes.append(t.tdef.exclude[ref.idx])
                elif ref.role == REQUIRE:
                    met.add(ref.idx)
                else:
                    term = t.tdef.include[ref.idx]
                    if f.title:
                        score += term.weight * t.tdef.title_weight
                        where = _original(title, ft, *f.title_first)
                        hits.append(TermHit(term.text, "title", term.weight, f.title, where))
                    if f.text:
                        score += term.weight * min(f.text, TEXT_MENTION_CAP)
                        where = _original(text, fx, *f.text_first)
                        hits.append(TermHit(term.text, "text", term.weight, f.text, where))
            results.append(
                self._decide(t, score, tuple(hits), tuple(vetoes), met, forced, out_of_scope)
            )
        return tuple(results)

    def _scan_regexes(self, ft: str, fx: str, found: dict[_Ref, _Found]) -> None:
        # Regexes see the documented folded text: single spaces, padded with one space.
        single: dict[bool, str] = {}
        for t in self._topics:
            for ref, rx, literal in t.regexes:
                for spaced, is_title in ((ft, True), (fx, False)):
                    if literal and literal not in spaced:
                        continue
                    folded = single.get(is_title)
                    if folded is None:
                        folded = single[is_title] = " " + " ".join(spaced.split()) + " "
                    ms = [m.group(0) for m in rx.finditer(folded)]
                    if ms:
                        first = (ms[0].strip(), -1)
                        found.setdefault(ref, _Found()).add(is_title, len(ms), first)

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


# --------------------------------------------------------------------------- regex prefilter


def required_literal(rx: re.Pattern[str]) -> str:
    """The longest run of literal characters every match of ``rx`` contains ("" if unknown).

    Most items contain none of a regex term's words, and ``in`` is far cheaper than a regex
    scan. Only literals at the top level of the pattern count (not inside groups, branches or
    repeats), so the answer is always safe. Spaces are left out: the text the regex runs on has
    single spaces but the prefilter sees the spaced form.
    """
    if rx.flags & re.IGNORECASE:
        return ""
    try:
        from re import _parser  # type: ignore[attr-defined]

        parsed = _parser.parse(rx.pattern, rx.flags)
        literal_op = _parser.LITERAL
    except Exception:  # a private module: if it ever changes, run every regex
        return ""
    best, run = "", ""
    for op, arg in parsed:
        if op is literal_op and chr(arg) != " ":
            run += chr(arg)
        else:
            best, run = max(best, run, key=len), ""
    return max(best, run, key=len)


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


def _original(text: str, spaced: str, key: str, end: int) -> str:
    """The words of ``text`` behind a hit, as they stand ("Données personnelles").

    ``spaced`` is " " + fold_spaced(text) + " " and ``end`` the index where ``key`` ended in
    it. Folding usually keeps every character in place, so the words are a slice of ``text``;
    when it did not (merged spaces, "œ" -> "oe"), a pattern built from the key finds them.
    """
    if end < 0:  # a regex hit: the folded match is all we have
        return key
    word = key.strip()
    if len(spaced) == len(text) + 2:
        start = end - len(key) + 1  # the key's leading space, i.e. the word's index in text
        stop = end - 1 if key.endswith(" ") else end
        while not key.endswith(" ") and stop < len(text) and text[stop].isalnum():
            stop += 1  # a prefix term ("héberg*"): show the whole word
        candidate = text[start:stop]
        if fold_spaced(candidate).startswith(word):
            return candidate
    return original(text, key)


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
