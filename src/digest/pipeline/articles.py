"""Decide on the article, not the teaser: for teasers of ``full_text`` feeds that score above a
low floor but are not kept, fetch the article page (the guarded full-text fetcher) before the
decision, at most ``[fetch] full_text_decisions`` per run, and decide again on title + article.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from digest.config import Settings
from digest.errors import StoreError
from digest.models import FeedSpec, Item, TopicMatch
from digest.pipeline import StopFlag, stopped
from digest.pipeline.relevance import item_text
from digest.store import Store
from digest.store.articles import save_full_text
from digest.store.db import savepoint
from digest.store.items import load_topic_matches, save_topic_matches

if TYPE_CHECKING:
    from digest.pipeline.relevance import Decider

log = logging.getLogger(__name__)

__all__ = ["ArticleCandidate", "article_candidates", "decide_on_articles"]


@dataclass(frozen=True, slots=True)
class ArticleCandidate:
    """A teaser worth reading the article of: ``rank`` is its best score over the threshold."""

    rank: float
    feed_id: int
    item_id: int
    item: Item
    spec: FeedSpec
    source: str


def _rank(matches: Sequence[TopicMatch], thresholds: dict[str, float]) -> float:
    """The teaser's best score as a fraction of its topic's threshold (topics in scope)."""
    best = 0.0
    for m in matches:
        if m.out_of_scope or m.kept:
            continue
        threshold = thresholds.get(m.topic_id, 0.0)
        best = max(best, m.score / threshold if threshold > 0 else 1.0)
    return best


def article_candidates(
    decisions: Sequence[tuple[int, Sequence[TopicMatch]]],
    items: dict[int, Item],
    spec: FeedSpec,
    *,
    feed_id: int,
    source: str,
    decider: Decider,
    min_words: int,
    floor: float,
) -> list[ArticleCandidate]:
    """The teasers of a ``full_text`` feed (text under ``min_words``) that no topic keeps and
    that score at least ``floor`` x a topic's threshold (0: every teaser)."""
    if not spec.full_text:
        return []
    thresholds = {t.id: t.threshold for t in decider.matcher.topics}
    out: list[ArticleCandidate] = []
    for item_id, matches in decisions:
        if any(m.kept for m in matches) or any(m.rule for m in matches):
            continue  # kept already (its page is fetched for the summary), or ruled out
        item = items[item_id]
        if len(item_text(item).split()) >= min_words:
            continue  # the feed carries the article itself
        rank = _rank(matches, thresholds)
        if rank >= floor and (rank > 0 or floor == 0):
            out.append(ArticleCandidate(rank, feed_id, item_id, item, spec, source))
    return out


def decide_on_articles(
    settings: Settings,
    store: Store,
    candidates: Sequence[ArticleCandidate],
    decider: Decider,
    *,
    stop: StopFlag | None = None,
) -> dict[int, Counter[str]]:
    """Fetch the best ``[fetch] full_text_decisions`` candidates' pages, keep their text with
    the item and decide again on title + article; returns, per feed id, the topics that now
    keep an item. A page that cannot be fetched leaves the teaser's decision as it was."""
    limit = settings.fetch.full_text_decisions
    if not candidates or limit <= 0 or stopped(stop):
        return {}
    # Best first (closest to a threshold), then newest: the bound takes the likeliest stories.
    ranked = sorted(candidates, key=lambda c: (-c.rank, -c.item.published.timestamp()))
    chosen = ranked[:limit]
    if len(ranked) > limit:
        log.info(
            "%d teaser(s) decided on their teaser only: over [fetch] full_text_decisions (%d)",
            len(ranked) - limit,
            limit,
        )
    # Imported only when a feed asks for full text: trafilatura is slow to import.
    from digest.summarize.fulltext import FullTextRequest, fetch_full_texts

    everywhere = settings.fetch.allow_private
    got = asyncio.run(
        fetch_full_texts(
            [
                FullTextRequest(c.item.url, allow_private=everywhere or c.spec.allow_private)
                for c in chosen
            ],
            timeout=settings.fetch.timeout,
        )
    )
    gained: dict[int, Counter[str]] = {}
    with store.begin() as conn:
        for c in chosen:
            text = got.get(c.item.url)
            if not isinstance(text, str) or not text.strip():
                log.info(
                    "article not fetched, decided on the teaser: %s",
                    text or "empty page",
                    extra={"item": c.item_id},
                )
                continue
            matches = decider.decide(c.item, c.spec, c.source, text=text)
            # The article adds topics, never takes one away: another feed carrying the same
            # link may have put the story in a topic meanwhile (pipeline.coverage).
            before = {m.topic_id: m for m in load_topic_matches(conn, c.item_id) if m.kept}
            matches = tuple(
                before[m.topic_id] if not m.kept and m.topic_id in before else m for m in matches
            )
            try:
                with savepoint(conn):
                    save_full_text(conn, c.item_id, text)
                    save_topic_matches(conn, c.item_id, matches)
            except StoreError as exc:  # this item keeps its teaser decision; the others go on
                log.warning("article decision not stored: %s", exc, extra={"item": c.item_id})
                continue
            kept = [m.topic_id for m in matches if m.kept and m.topic_id not in before]
            gained.setdefault(c.feed_id, Counter()).update(kept)
    log.info(
        "decided on the article",
        extra={
            "pages": len(chosen),
            "read": sum(isinstance(got.get(c.item.url), str) for c in chosen),
            "kept": sum(sum(n.values()) for n in gained.values()),
        },
    )
    return gained
