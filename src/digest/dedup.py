"""One story, one entry: group items that are the same story (same canonical URL, or near-duplicate
titles and first sentences from different sources within the issue window).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from rapidfuzz import fuzz

from digest.urls import canonical_url

#: Similarity (0-100, rapidfuzz) of normalized titles from which two items may be one story.
TITLE_SIMILARITY = 82.0
#: Similarity of title + first sentence, for rewritten titles of the same news.
LEAD_SIMILARITY = 72.0
#: Groups a candidate is compared with at most (the best-ranked ones sharing a title word).
MAX_COMPARISONS = 200


def _wordset(words: str) -> frozenset[str]:
    return frozenset(words.split())


# Words that carry no identity: similar stories share them without being the same story.
_STOPWORDS = _wordset(
    """a an and are as at be by for from has have in into is it its of on or over the their to
    was were will with after says said new le la les l un une des du de d et en au aux pour par
    sur dans avec est sont a ses son sa qui que ne pas plus apres selon contre vers"""
)
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+")
_NUMBER = re.compile(r"\d+")
_WORD = re.compile(r"[^\W\d_][\w'’-]*")
_SUFFIX = re.compile(r"\s+[-|–—:]\s+([^-|–—:]{2,40})$")
#: Capitalized words that name places or kinds of things rather than the actors of a story.
_GENERIC_NAMES = _wordset(
    """eu us uk usa europe european france french germany german american americans
    britain british irish ireland dutch italian italy spain spanish union commission
    government court state states"""
)


_COMBINING = re.compile("[\u0300-\u036f]+")
_NON_WORD = re.compile(r"[\W_]+")


def fold(text: str) -> str:
    """Lowercase, no accents, punctuation and elisions as single spaces (titles are short)."""
    text = unicodedata.normalize("NFKD", text.replace("œ", "oe").replace("Œ", "Oe"))
    return " ".join(_NON_WORD.sub(" ", _COMBINING.sub("", text).lower()).split())


@dataclass(frozen=True)
class StoryCandidate:
    """An item offered for grouping; callers pass candidates best-first."""

    key: int
    title: str
    text: str
    url: str
    source: str
    published: datetime


@dataclass
class _Prepared:
    cand: StoryCandidate
    canonical: str
    title: str  # folded, stopwords and the source's suffix removed
    lead: str  # title + first sentence, same normalization
    numbers: frozenset[str]
    names: frozenset[str]  # folded capitalized words of the title
    words: frozenset[str]  # every folded word of title and text, to look names up in


@dataclass
class _Group:
    members: list[_Prepared] = field(default_factory=list)
    urls: set[str] = field(default_factory=set)
    sources: set[str] = field(default_factory=set)


def _strip_source_suffix(title: str, source: str) -> str:
    # "CNIL fines Google - Reuters": the outlet's name is not part of the story.
    m = _SUFFIX.search(title)
    if m:
        tail = fold(m.group(1))
        src = fold(source)
        if tail and src and (tail in src or src in tail):
            return title[: m.start()]
    return title


def _normalize(text: str) -> str:
    return " ".join(w for w in fold(text).split() if w not in _STOPWORDS)


def _first_sentence(text: str) -> str:
    text = " ".join(text.split())
    first = _SENTENCE_END.split(text, maxsplit=1)[0]
    return " ".join(first.split()[:40])


def _names(title: str) -> frozenset[str]:
    names: set[str] = set()
    for i, m in enumerate(_WORD.finditer(title)):
        w = m.group(0)
        is_acronym = len(w) >= 2 and w.isupper()
        # The first word is capitalized anyway; only an acronym there is surely a name.
        if w[0].isupper() and (i > 0 or is_acronym):
            for part in fold(w).split():
                if part not in _STOPWORDS and part not in _GENERIC_NAMES and len(part) >= 2:
                    names.add(part)
    return frozenset(names)


def _prepare(c: StoryCandidate) -> _Prepared:
    title = _strip_source_suffix(c.title, c.source)
    first = _first_sentence(c.text)
    return _Prepared(
        cand=c,
        canonical=canonical_url(c.url) if c.url else "",
        title=_normalize(title),
        lead=_normalize(f"{title} {first}"),
        numbers=frozenset(_NUMBER.findall(fold(title))),
        names=_names(title),
        words=frozenset(fold(f"{c.title} {c.text}").split()),
    )


def _distinct_events(a: _Prepared, b: _Prepared) -> bool:
    """Evidence that two similar items report different events (different amounts, actors)."""
    if a.numbers and b.numbers and a.numbers.isdisjoint(b.numbers):
        return True  # "€150m" vs "€60m", "Law 25" vs "Law 96"
    only_a = a.names - b.words
    only_b = b.names - a.words
    return bool(only_a and only_b)  # "fines Google" vs "fines Microsoft"


def same_story(a: _Prepared, b: _Prepared) -> bool:
    """Near-duplicate titles (or title + first sentence), with no sign of two events."""
    if not a.title or not b.title:
        return False
    similar = (
        fuzz.token_set_ratio(a.title, b.title) >= TITLE_SIMILARITY
        or fuzz.token_sort_ratio(a.lead, b.lead) >= LEAD_SIMILARITY
    )
    return similar and not _distinct_events(a, b)


def group_stories(
    cands: Sequence[StoryCandidate], *, window: timedelta = timedelta(days=7)
) -> list[tuple[int, ...]]:
    """Keys grouped by story, every candidate in exactly one group, input order kept.

    Same canonical URL always means same story. Otherwise a candidate joins a group when its
    source is not in it yet, it was published within ``window`` of the group's first member
    (the representative), and its title is a near-duplicate of the representative's. Only the
    representative is compared, so stories never chain into each other.
    """
    groups: list[_Group] = []
    by_url: dict[str, _Group] = {}
    # Representatives indexed by the words of their titles: only groups sharing a word with a
    # candidate can hold its story, which keeps thousands of items far from n² comparisons.
    by_word: dict[str, list[int]] = {}
    for c in cands:
        p = _prepare(c)
        group = by_url.get(p.canonical) if p.canonical else None
        if group is None:
            near = sorted({i for w in set(p.title.split()) for i in by_word.get(w, ())})
            # Bounded: a flood of near-identical titles that are distinct events (numbered
            # items) would otherwise compare every item with every group, n².
            for i in near[:MAX_COMPARISONS]:
                g = groups[i]
                rep = g.members[0]
                if (
                    p.cand.source not in g.sources
                    and abs(p.cand.published - rep.cand.published) <= window
                    and same_story(rep, p)
                ):
                    group = g
                    break
        if group is None:
            group = _Group()
            for w in set(p.title.split()):
                by_word.setdefault(w, []).append(len(groups))
            groups.append(group)
        group.members.append(p)
        group.sources.add(p.cand.source)
        if p.canonical:
            group.urls.add(p.canonical)
            by_url.setdefault(p.canonical, group)
    return [tuple(m.cand.key for m in g.members) for g in groups]
