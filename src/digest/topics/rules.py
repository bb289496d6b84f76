"""Keep and block rules applied before the topics (what readers of rss2email and Miniflux expect):
a global block list of words, sources and URL patterns, and per feed ``include``/``exclude``
terms. Words use the topics' term syntax; patterns run under RE2 (linear time, whatever they are).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from digest.errors import ConfigError
from digest.models import FeedSpec, Term, TopicDef
from digest.topics.regex import Regex, compile_term

if TYPE_CHECKING:
    from digest.topics.matcher import TopicMatcher

__all__ = [
    "MAX_PATTERN_CHARS",
    "MAX_RULES",
    "KeepRules",
    "glob_to_regex",
    "rule_topics",
    "split_block",
]

#: Entries of one rule list at most, and characters of one entry: rules stay a short list an
#: editor reads, and a pattern stays small whatever RE2 makes of it.
MAX_RULES = 1000
MAX_PATTERN_CHARS = 500

SOURCE_PREFIX = "source:"
URL_PREFIX = "url:"
#: Pseudo-topic ids of the word rules in the rules' own matcher.
BLOCK_ID = "filters.block"


def glob_to_regex(glob: str) -> str:
    """``*`` any run of characters, ``?`` one character, everything else literal; anchored."""
    out = []
    for ch in glob:
        if ch == "*":
            out.append(".*")
        elif ch == "?":
            out.append(".")
        else:
            out.append(re.escape(ch))
    return "^" + "".join(out) + "$"


@dataclass(frozen=True, slots=True)
class _Split:
    words: tuple[str, ...]
    sources: tuple[str, ...]
    urls: tuple[tuple[str, str], ...]  # (as written, RE2 pattern)


def split_block(entries: Sequence[str], where: str = "filters.block") -> _Split:
    """Sort ``[filters] block`` entries into words, ``source:NAME`` and ``url:GLOB`` (or
    ``url:regex:PATTERN``); ``ConfigError`` naming the entry when one cannot be used."""
    if len(entries) > MAX_RULES:
        raise ConfigError(f"{where}: {len(entries)} entries, at most {MAX_RULES}")
    words: list[str] = []
    sources: list[str] = []
    urls: list[tuple[str, str]] = []
    for i, raw in enumerate(entries):
        entry = raw.strip()
        if not entry:
            raise ConfigError(f"{where}[{i}]: empty entry")
        if len(entry) > MAX_PATTERN_CHARS:
            raise ConfigError(f"{where}[{i}]: longer than {MAX_PATTERN_CHARS} characters")
        if entry.startswith(SOURCE_PREFIX):
            name = entry[len(SOURCE_PREFIX) :].strip()
            if not name:
                raise ConfigError(f"{where}[{i}]: 'source:' needs a feed name, title or host")
            sources.append(name.casefold())
        elif entry.startswith(URL_PREFIX):
            body = entry[len(URL_PREFIX) :].strip()
            if not body:
                raise ConfigError(f"{where}[{i}]: 'url:' needs a pattern")
            if body.startswith("regex:"):
                urls.append((entry, body[len("regex:") :]))
            else:
                urls.append((entry, glob_to_regex(body)))
        else:
            words.append(entry)
    return _Split(tuple(words), tuple(sources), tuple(urls))


def _terms_checked(terms: Sequence[str], where: str) -> tuple[Term, ...]:
    """The terms as include terms of a pseudo-topic; a ``regex:`` one RE2 cannot take is a
    ``ConfigError`` naming the config key (``feeds[2].include[0]``), not the pseudo-topic."""
    if len(terms) > MAX_RULES:
        raise ConfigError(f"{where}: {len(terms)} terms, at most {MAX_RULES}")
    for i, t in enumerate(terms):
        if not t.strip():
            raise ConfigError(f"{where}[{i}]: empty term")
        if len(t) > MAX_PATTERN_CHARS:
            raise ConfigError(f"{where}[{i}]: longer than {MAX_PATTERN_CHARS} characters")
        if t.startswith("regex:"):
            compile_term(t[len("regex:") :], f"{where}[{i}] (term {t!r})")
    return tuple(Term(t, 1.0) for t in terms)


def _feed_rule_id(index: int, kind: str) -> str:
    return f"feeds.{index}.{kind}"


def rule_topics(block: Sequence[str], feeds: Sequence[FeedSpec]) -> tuple[TopicDef, ...]:
    """The word rules as pseudo-topics, so they are folded, inflected and matched exactly like
    topic terms (``regex:`` and ``case:`` included) by a matcher of their own."""
    defs: list[TopicDef] = []
    words = split_block(block).words
    if words:
        defs.append(
            TopicDef(BLOCK_ID, "[filters] block", _terms_checked(words, "filters.block words"))
        )
    for i, spec in enumerate(feeds):
        for kind, terms in (("include", spec.include), ("exclude", spec.exclude)):
            if terms:
                rid = _feed_rule_id(i, kind)
                defs.append(TopicDef(rid, rid, _terms_checked(terms, f"feeds[{i}].{kind}")))
    return tuple(defs)


def _host(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").casefold()
    except ValueError:
        return ""


class KeepRules:
    """The compiled rules; ``verdict`` says which one drops an item, or None when none does.

    ``words`` is the matcher compiled from ``rule_topics(block, feeds)`` (None when there are
    no word rules), built by ``pipeline.wiring`` like every matcher.
    """

    def __init__(
        self, block: Sequence[str], feeds: Sequence[FeedSpec], words: TopicMatcher | None
    ) -> None:
        split = split_block(block)
        self._sources = frozenset(split.sources)
        self._urls: list[tuple[str, Regex]] = [
            (entry, compile_term(pattern, f"filters.block entry {entry!r}"))
            for entry, pattern in split.urls
        ]
        self._words = words
        self._has_block_words = bool(split.words)
        #: feed URL -> (index in [[feeds]], include terms, exclude terms)
        self._feeds = {
            s.url: (i, s.include, s.exclude) for i, s in enumerate(feeds) if s.include or s.exclude
        }

    @property
    def empty(self) -> bool:
        """No rule at all: nothing to check (the shipped config)."""
        return not (self._sources or self._urls or self._has_block_words or self._feeds)

    def verdict(self, *, title: str, text: str, url: str, source: str, feed_url: str) -> str | None:
        """The rule that drops this item, as an editor reads it, or None when none does.

        Order: the global block list (sources, URL patterns, words), then the feed's
        ``exclude``, then its ``include``.
        """
        if self.empty:
            return None
        if self._sources:
            for name in (source.casefold(), feed_url.casefold(), _host(feed_url)):
                if name and name in self._sources:
                    return f"[filters] block: source {name!r}"
        for entry, rx in self._urls:
            if rx.search(url) is not None:
                return f"[filters] block: {entry!r} matches the link"
        feed = self._feeds.get(feed_url)
        if not self._has_block_words and feed is None:
            return None
        assert self._words is not None
        scope = [BLOCK_ID] if self._has_block_words else []
        if feed is not None:
            index, include, exclude = feed
            scope += [_feed_rule_id(index, "exclude")] if exclude else []
            scope += [_feed_rule_id(index, "include")] if include else []
        found = {
            m.topic_id: m for m in self._words.match(title, text, scope=scope) if not m.out_of_scope
        }
        block = found.get(BLOCK_ID)
        if block is not None and block.hits:
            h = block.hits[0]
            return f"[filters] block: {h.term!r} (found {h.matched or h.term!r} in the {h.where})"
        if feed is None:
            return None
        index, include, exclude = feed
        excluded = found.get(_feed_rule_id(index, "exclude"))
        if excluded is not None and excluded.hits:
            h = excluded.hits[0]
            return (
                f"feeds[{index}].exclude: {h.term!r} (found {h.matched or h.term!r} in the "
                f"{h.where})"
            )
        included = found.get(_feed_rule_id(index, "include"))
        if include and (included is None or not included.hits):
            shown = ", ".join(repr(t) for t in include[:6]) + (", ..." if len(include) > 6 else "")
            return f"feeds[{index}].include: none of {shown} is mentioned"
        return None
