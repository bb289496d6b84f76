"""Summaries for the items an issue takes: written once each (the article page first for teasers
of ``full_text`` feeds), recorded, never per recipient; one item's failure never stops the rest.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from digest.config import Settings
from digest.errors import DigestError
from digest.models import FeedSpec, StoredItem, Summary
from digest.pipeline import Progress, StopFlag, stopped
from digest.pipeline.wiring import make_summarizer
from digest.store import Store
from digest.store.items import SQLCache, save_summary

if TYPE_CHECKING:
    from digest.summarize import Summarizer

log = logging.getLogger(__name__)

__all__ = ["summarize_items"]


def summarize_items(
    settings: Settings,
    store: Store,
    items: Sequence[StoredItem],
    *,
    record: bool = True,
    progress: Progress | None = None,
    stop: StopFlag | None = None,
) -> dict[int, Summary]:
    """Summarize ``items`` once each (the article page first, for teasers of full-text feeds)."""
    if not items:
        return {}
    summarizer = make_summarizer(settings, cache=SQLCache(store))
    try:
        return _summarize_each(settings, store, summarizer, items, record, progress, stop)
    finally:
        close = getattr(summarizer, "close", None)  # the LLM engine holds an HTTP client
        if callable(close):
            close()


def _summarize_each(
    settings: Settings,
    store: Store,
    summarizer: Summarizer,
    items: Sequence[StoredItem],
    record: bool,
    progress: Progress | None,
    stop: StopFlag | None,
) -> dict[int, Summary]:
    full = _full_texts(settings, items)
    out: dict[int, Summary] = {}
    for n, stored in enumerate(items, 1):
        if stopped(stop):
            break
        item = stored.item
        # The summarizer takes HTML or plain text alike (extracted page text is plain).
        html = full.get(stored.id) or item.content_html or item.summary_html
        try:
            summary: Summary | None = summarizer.summarize(item.title, html, language=item.language)
        except DigestError as exc:
            # One item's failure never stops the run; it is tried again next time.
            log.warning("summary failed: %s", exc, extra={"item": stored.id})
            summary = None
        if summary is not None:
            out[stored.id] = summary
            if record:
                with store.begin() as conn:
                    save_summary(
                        conn,
                        stored.id,
                        summary,
                        now=datetime.now(UTC),
                        full_text=full.get(stored.id),
                    )
        if progress is not None:
            progress("summarize", n, len(items))
    return out


def _full_texts(settings: Settings, items: Sequence[StoredItem]) -> dict[int, str]:
    """Article page text for teaser items (under ``[summary] min_words``) of ``full_text`` feeds.

    A page that cannot be fetched is logged; its item is summarized from the feed's own text.
    """
    from digest.summarize.clean import html_to_text

    specs = {s.url: s for s in settings.feed_specs()}
    wanted: list[tuple[StoredItem, FeedSpec]] = []
    for stored in items:
        spec = specs.get(stored.item.feed_url)
        if spec is None or not spec.full_text:
            continue
        text = html_to_text(stored.item.content_html or stored.item.summary_html)
        if len(text.split()) < settings.summary.min_words:
            wanted.append((stored, spec))
    if not wanted:
        return {}
    # Imported only when a feed asks for full text: trafilatura is slow to import.
    from digest.summarize.fulltext import FullTextRequest, fetch_full_texts

    requests = [FullTextRequest(s.item.url, allow_private=spec.allow_private) for s, spec in wanted]
    got = asyncio.run(fetch_full_texts(requests, timeout=settings.fetch.timeout))
    out: dict[int, str] = {}
    for stored, _ in wanted:
        value = got.get(stored.item.url)
        if isinstance(value, str) and value.strip():
            out[stored.id] = value
        elif value is not None:
            log.warning(
                "full text not fetched, summarizing the feed's text: %s",
                value or "empty page",
                extra={"item": stored.id},
            )
    return out
