"""The topic matcher: every configured topic compiled once into one Aho-Corasick automaton.

An item's title and text are folded once, scanned once, and each topic gets a scored,
explainable decision (``models.TopicMatch``): which terms matched where, vetoes, unmet groups.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import ahocorasick_rs

from digest.errors import ConfigError
from digest.models import TermHit, TopicDef, TopicMatch
from digest.topics.case import ACRONYM, CaseTerm, case_pattern, shouting
from digest.topics.regex import Regex, compile_term
from digest.topics.text import expand_term, fold, fold_bytes, inner_prefix_pattern

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
    #: (automaton key, where it starts in " " + folded field) or (regex match, -1)
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
    #: The decision for an item with no term of this topic (shared: most items).
    empty: TopicMatch = _UNSET
    #: Decisions for items with require-group words only (common words: many items), by the
    #: groups met; shared like ``empty``.
    groups_only: dict[frozenset[int], TopicMatch] = field(default_factory=dict)


def _parse_term(raw: str) -> tuple[str, str]:
    """-> (kind, body): kind is "regex", "case", "exact" or "words"."""
    if raw.startswith("regex:"):
        return "regex", raw[len("regex:") :]
    if raw.startswith("case:"):
        return "case", raw[len("case:") :].strip()
    body = raw[1:] if raw.startswith("=") else raw
    if ACRONYM.fullmatch(body.strip()):
        return "case", body.strip()
    return ("exact" if raw.startswith("=") else "words"), raw


class TopicMatcher:
    """Compiled topics; ``match`` returns one TopicMatch per topic, in config order."""

    def __init__(self, topics: Sequence[TopicDef]) -> None:
        self.topics: tuple[TopicDef, ...] = tuple(topics)
        self._topics = [_Topic(t) for t in self.topics]
        self._index = {t.id: i for i, t in enumerate(self.topics)}
        self._keys: list[str] = []
        #: per key: (what it stands for, index of its case pattern or -1)
        self._key_refs: list[list[tuple[_Ref, int]]] = []
        self._case_terms: list[CaseTerm] = []
        key_ids: dict[str, int] = {}
        self._regexes: list[tuple[_Ref, Regex]] = []
        #: key id of a regex's required literal -> the regexes to run when it is found
        self._triggers: dict[int, list[int]] = {}
        self._untriggered: list[int] = []
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
                rx: Regex | None = None
                if kind == "regex":
                    # An editor's pattern: RE2, linear in the text whatever the pattern.
                    rx = compile_term(body, f"{where} (topic {topic.id!r}, term {raw!r})")
                elif inner is not None:
                    # Built by us from escaped words (no nested repeats): the stdlib engine, which
                    # has the lookarounds it uses.
                    rx = re.compile(inner)
                if rx is not None:
                    literal = required_literal(rx.pattern)
                    self._regexes.append((ref, rx))
                    if literal:  # the automaton finds the literal; only then the regex runs
                        self._key_id(literal, key_ids)
                        self._triggers.setdefault(key_ids[literal], []).append(
                            len(self._regexes) - 1
                        )
                    else:
                        self._untriggered.append(len(self._regexes) - 1)
                    continue
                cs = -1
                if kind == "case":
                    case_term, forms = case_pattern(body)
                    cs = len(self._case_terms)
                    self._case_terms.append(case_term)
                else:
                    forms = expand_term(body, inflect=kind == "words")
                if not forms:
                    raise ConfigError(f"{where}: term {raw!r} has no letters or digits")
                for folded, prefix in forms:
                    # Keys are padded with spaces (the folded text is too), so a match always
                    # starts and ends on a word boundary: "cloud" never matches "cloudy".
                    key = f" {folded}" if prefix else f" {folded} "
                    kid = self._key_id(key, key_ids)
                    if (ref, cs) not in self._key_refs[kid]:
                        self._key_refs[kid].append((ref, cs))
        self._has_keys = bool(self._keys)
        # One DFA over the folded bytes of every topic's keys: a single scan per item.
        self._automaton = ahocorasick_rs.BytesAhoCorasick(
            [k.encode("utf-8") for k in self._keys] or [b"\0\0"],
            matchkind=ahocorasick_rs.MatchKind.Standard,
            implementation=ahocorasick_rs.Implementation.DFA,
        )
        # Most items match nothing: their (identical) answer is built once.
        for t in self._topics:
            t.empty = self._decide(t, 0.0, (), (), set(), forced=False, out_of_scope=False)
        self._empty = tuple(t.empty for t in self._topics)

    def _key_id(self, key: str, key_ids: dict[str, int]) -> int:
        kid = key_ids.get(key)
        if kid is None:
            kid = key_ids[key] = len(self._keys)
            self._keys.append(key)
            self._key_refs.append([])
        return kid

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
        bt, title_aligned = fold_bytes(title)
        bx, text_aligned = fold_bytes(text)
        # One pass over both fields (" title \0 text "): no key contains NUL.
        split = len(bt) + 3
        found: dict[_Ref, _Found] = {}
        run: list[tuple[int, bool]] = []
        if self._has_keys:
            # key id (negated for the text field) -> [mentions, start of the first one]
            seen: dict[int, list[int]] = {}
            for kid, start, _end in self._automaton.find_matches_as_indexes(
                b" %b \0 %b " % (bt, bx), overlapping=True
            ):
                if start >= split:
                    kid = -kid - 1
                    start -= split
                if kid in seen:
                    seen[kid][0] += 1
                else:
                    seen[kid] = [1, start]
            triggers = self._triggers
            cased: dict[int, tuple[int, int]] = {}
            counted: set[tuple[_Ref, int, bool]] = set()
            for kid, (n, start) in seen.items():
                in_title = kid >= 0
                real = kid if in_title else -kid - 1
                first = (self._keys[real], start)
                for ref, cs in self._key_refs[real]:
                    if cs >= 0:  # the folded key was found: is it there in the right case?
                        if cs not in cased:
                            cased[cs] = self._case_counts(cs, title, text)
                        cnt = cased[cs][0 if in_title else 1]
                        if not cnt or (ref, cs, in_title) in counted:
                            continue  # "CNIL" and "CNILs" are two keys but one count
                        counted.add((ref, cs, in_title))
                    else:
                        cnt = n
                    f = found.get(ref)
                    if f is None:
                        f = found[ref] = _Found()
                    if in_title:
                        if not f.title:
                            f.title_first = first
                        f.title += cnt
                    else:
                        if not f.text:
                            f.text_first = first
                        f.text += cnt
                if real in triggers:
                    run.extend((i, in_title) for i in triggers[real])
        if run or self._untriggered:
            run.extend((i, f) for i in self._untriggered for f in (True, False))
            self._run_regexes(run, bt, bx, found)
        if not found and not scope and not always:
            return self._empty  # most items: nothing to explain, the answer is shared

        n_topics = len(self._topics)
        scores = [0.0] * n_topics
        hits: list[list[TermHit]] = [[] for _ in range(n_topics)]
        vetoes: list[list[str]] = [[] for _ in range(n_topics)]
        met: list[set[int]] = [set() for _ in range(n_topics)]
        for (ti, role, idx), f in found.items():
            tdef = self.topics[ti]
            if role == INCLUDE:
                term = tdef.include[idx]
                w = term.weight
                if f.title:
                    scores[ti] += w * tdef.title_weight
                    where = _original(title, title_aligned, *f.title_first)
                    hits[ti].append(TermHit(term.text, "title", w, f.title, where))
                if f.text:
                    scores[ti] += w * (f.text if f.text < TEXT_MENTION_CAP else TEXT_MENTION_CAP)
                    where = _original(text, text_aligned, *f.text_first)
                    hits[ti].append(TermHit(term.text, "text", w, f.text, where))
            elif role == REQUIRE:
                met[ti].add(idx)
            else:
                vetoes[ti].append(tdef.exclude[idx])
        results: list[TopicMatch] = []
        for ti, t in enumerate(self._topics):
            tid = t.tdef.id
            forced = tid in always
            out_of_scope = bool(scope) and tid not in scope and not forced
            if not (hits[ti] or vetoes[ti] or met[ti] or forced or out_of_scope):
                results.append(t.empty)
                continue
            if not (hits[ti] or vetoes[ti] or forced or out_of_scope):
                key = frozenset(met[ti])
                shared = t.groups_only.get(key)
                if shared is None:
                    shared = t.groups_only[key] = self._decide(
                        t, 0.0, (), (), met[ti], forced=False, out_of_scope=False
                    )
                results.append(shared)
                continue
            results.append(
                self._decide(
                    t,
                    scores[ti],
                    tuple(hits[ti]),
                    tuple(vetoes[ti]),
                    met[ti],
                    forced,
                    out_of_scope,
                )
            )
        return tuple(results)

    def _case_counts(self, cs: int, title: str, text: str) -> tuple[int, int]:
        """Mentions of case term ``cs`` in (title, text) of the original item.

        A field in capitals cannot tell "ICO" from "ico": there the term counts only when the
        other field has it in the right case.
        """
        term = self._case_terms[cs]
        t, x = term.mentions(title, TEXT_MENTION_CAP), term.mentions(text, TEXT_MENTION_CAP)
        t_shout = bool(t) and shouting(title)
        x_shout = bool(x) and shouting(text)
        t_ok = 0 if t_shout else t
        x_ok = 0 if x_shout else x
        return (t if t_ok or x_ok else 0), (x if x_ok or t_ok else 0)

    def _run_regexes(
        self, run: list[tuple[int, bool]], bt: bytes, bx: bytes, found: dict[_Ref, _Found]
    ) -> None:
        # Regexes see the documented folded text: single spaces, padded with one space.
        folded: dict[bool, str] = {}  # built for the fields a regex actually runs on
        for i, in_title in sorted(set(run)):
            ref, rx = self._regexes[i]
            field_text = folded.get(in_title)
            if field_text is None:
                raw = bt if in_title else bx
                field_text = folded[in_title] = " " + " ".join(raw.decode("utf-8").split()) + " "
            # One search first: most texts holding the literal do not match, and RE2's search
            # costs a few µs where its finditer costs tens (it re-encodes the text per match).
            if rx.search(field_text) is None:
                continue
            ms = [m.group(0) for m in rx.finditer(field_text)]
            if ms:
                found.setdefault(ref, _Found()).add(in_title, len(ms), (ms[0].strip(), -1))

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
        """The definition of a compiled topic, by id."""
        i = self._index.get(topic_id)
        return None if i is None else self.topics[i]


# --------------------------------------------------------------------------- regex prefilter


def required_literal(pattern: str) -> str:
    """The longest run of literal characters every match of ``rx`` contains ("" if unknown).

    Most items contain none of a regex term's words, and ``in`` is far cheaper than a regex
    scan. Only literals at the top level of the pattern count (not inside groups, branches or
    repeats), so the answer is always safe. Spaces are left out: the text the regex runs on has
    single spaces but the prefilter sees the spaced form.
    """
    try:
        from re import _parser  # type: ignore[attr-defined]

        parsed = _parser.parse(pattern, 0)
        if parsed.state.flags & re.IGNORECASE:  # an inline (?i): literals are not exact
            return ""
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


def _original(text: str, aligned: bool, key: str, start: int) -> str:
    """The words of ``text`` behind a hit, as they stand ("Données personnelles").

    ``start`` is where ``key`` (with its leading space) began in " " + folded text: when
    folding kept every character in place, that is where the words begin in ``text``;
    otherwise (merged spaces, "œ" -> "oe") a pattern built from the key finds them.
    """
    if start < 0:  # a regex hit: the folded match is all we have
        return key
    if aligned:
        stop = start + len(key.rstrip()) - 1
        if not key.endswith(" "):  # a prefix term ("héberg*"): show the whole word
            while stop < len(text) and text[stop].isalnum():
                stop += 1
        return text[start:stop]
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
