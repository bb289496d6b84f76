"""An item's decisions: the topics' scores, then the rules read before them (``[filters] block``,
a feed's ``include``/``exclude``, the languages the readers read) that may drop it.
Built once per run by ``wiring.make_decider``; the fetch, ``explain`` and ``topics test`` share it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from digest.models import FeedSpec, Item, TopicMatch
from digest.sanitize import plain_text

if TYPE_CHECKING:
    from digest.topics import TopicMatcher
    from digest.topics.rules import KeepRules

__all__ = ["Decider", "item_text"]


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
        matches = self.matcher.match(
            item.title,
            body,
            scope=spec.topics if spec else (),
            always=spec.always if spec else (),
        )
        if not explain and not any(m.kept for m in matches):
            return matches
        why = self.rule(item, source, body)
        if why is None:
            return matches
        return tuple(replace(m, kept=False, rule=why) for m in matches)

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
    from digest.summarize.language import UNDETERMINED, detect

    lang = detect(f"{item.title}\n{text}", declared=item.language)
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
    """Decisions for a feed's new items, in order."""
    return [(item_id, decider.decide(item, spec, source)) for item_id, item in items]
