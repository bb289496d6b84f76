"""An item's decisions: the topics' scores, then the rules read before them (``[filters] block``,
a feed's ``include``/``exclude``, the languages the readers read) that may drop it.
Built once per run by ``wiring.make_decider``; the fetch, ``explain`` and ``topics test`` share it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from digest.models import FeedSpec, Item, TopicMatch
from digest.sanitize import plain_text

if TYPE_CHECKING:
    from digest.topics import TopicMatcher
    from digest.topics.rules import KeepRules

__all__ = ["Decider", "LearnedKeeps", "item_text"]

#: (title, text) of a batch of items and the rules' decisions -> the decisions with the learned
#: scorer's keeps (``pipeline.learning.decide_with_model``).
LearnedKeeps = Callable[
    [Sequence[tuple[str, str]], Sequence[tuple[TopicMatch, ...]]], list[tuple[TopicMatch, ...]]
]


def item_text(item: Item) -> str:
    """What an item's topics are decided on besides its title: the feed's own text."""
    return plain_text(item.content_html or item.summary_html)


@dataclass(frozen=True, slots=True)
class Decider:
    """The topic matcher with the rules applied before it."""

    matcher: TopicMatcher
    rules: KeepRules
    #: Languages the readers read (``[digest] languages``); empty: every language.
    languages: frozenset[str]
    #: The learned scorer's keeps for topics with ``learned = "keep"`` ((title, text) and the
    #: rules' decisions of a batch -> the decisions with its keeps); None when no topic has it.
    learned: LearnedKeeps | None = None

    def decide(
        self,
        item: Item,
        spec: FeedSpec | None,
        source: str,
        *,
        text: str | None = None,
        explain: bool = False,
    ) -> tuple[TopicMatch, ...]:
        """One decision per topic; a rule that drops the item makes every one ``kept=False``
        with ``rule`` saying which.

        ``text`` replaces the feed's text (an article page fetched for a teaser). The rules are
        looked at only when a topic would keep the item, unless ``explain`` (a dropped item
        stays dropped; the fetch does not pay for language detection on every item).
        """
        body = item_text(item) if text is None else text
        matches = self._match(item, spec, body)
        if self.learned is not None:
            matches = self.learned([(item.title, body)], [matches])[0]
        return self._finish(item, source, body, matches, explain=explain)

    def decide_many(
        self, items: Sequence[Item], spec: FeedSpec | None, source: str
    ) -> list[tuple[TopicMatch, ...]]:
        """``decide`` for a feed's items, the learned scorer run once for them all."""
        bodies = [item_text(item) for item in items]
        matches = [self._match(item, spec, body) for item, body in zip(items, bodies, strict=True)]
        if self.learned is not None and items:
            matches = self.learned(
                [(i.title, b) for i, b in zip(items, bodies, strict=True)], matches
            )
        return [
            self._finish(item, source, body, ms, explain=False)
            for item, body, ms in zip(items, bodies, matches, strict=True)
        ]

    def _match(self, item: Item, spec: FeedSpec | None, body: str) -> tuple[TopicMatch, ...]:
        return self.matcher.match(
            item.title,
            body,
            scope=spec.topics if spec else (),
            always=spec.always if spec else (),
        )

    def _finish(
        self,
        item: Item,
        source: str,
        body: str,
        matches: tuple[TopicMatch, ...],
        *,
        explain: bool,
    ) -> tuple[TopicMatch, ...]:
        if not explain and not any(m.kept for m in matches):
            return matches
        why = self.rule(item, source, body)
        if why is None:
            return matches
        return tuple(replace(m, kept=False, rule=why, learned=None) for m in matches)

    def rule(self, item: Item, source: str, text: str) -> str | None:
        """The rule that drops the item, or None: the block list and the feed's rules first,
        then the language."""
        why = self.rules.verdict(
            title=item.title,
            text=text,
            url=item.url,
            source=source,
            feed_url=item.feed_url,
        )
        if why is not None or not self.languages:
            return why
        return language_rule(item, text, self.languages)


def language_rule(item: Item, text: str, languages: frozenset[str]) -> str | None:
    """Why the item's language drops it, or None (a language that cannot be told keeps it)."""
    from digest.summarize.language import UNDETERMINED, detect, surely_read

    sample = f"{item.title}\n{text}"
    if surely_read(sample, item.language, languages):
        return None  # detect could only answer a language read, or "cannot tell"
    lang = detect(sample, declared=item.language)
    if lang == UNDETERMINED or lang in languages:
        return None
    read = ", ".join(sorted(languages))
    return f"language: {lang} (detected) is not one the readers read ([digest] languages: {read})"


def decide_all(
    decider: Decider,
    items: Sequence[tuple[int, Item]],
    spec: FeedSpec | None,
    source: str,
) -> list[tuple[int, tuple[TopicMatch, ...]]]:
    """Decisions for a feed's new items, in order (the learned scorer in one batch)."""
    got = decider.decide_many([item for _, item in items], spec, source)
    return [(item_id, ms) for (item_id, _), ms in zip(items, got, strict=True)]
