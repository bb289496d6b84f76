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
from digest.errors import DigestError, StoreError
from digest.models import FeedSpec, StoredItem, Summary
from digest.pipeline import Progress, StopFlag, stopped
from digest.pipeline.wiring import make_summarizer
from digest.store import Store
from digest.store.articles import load_full_texts
from digest.store.items import SQLCache, record_item_failure, save_summary

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
    failed: list[tuple[str, str]] | None = None,
) -> dict[int, Summary]:
    """Summarize ``items`` once each (the article page first, for teasers of full-text feeds).

    An item whose summary fails is appended to ``failed`` (where, reason) and, with ``record``,
    has the failure counted on it.
    """
    if not items:
        return {}
    summarizer = make_summarizer(settings, cache=SQLCache(store))
    try:
        return _summarize_each(settings, store, summarizer, items, record, progress, stop, failed)
    finally:
        close = getattr(summarizer, "close", None)  # the LLM engine holds an HTTP client
        if callable(close):
            close()


def _item_failed(
    store: Store,
    stored: StoredItem,
    reason: str,
    record: bool,
    failed: list[tuple[str, str]] | None,
) -> None:
    """Count one failure of an item (recorded on it when ``record``) for the run's report."""
    if failed is not None:
        failed.append((stored.item.url or f"item {stored.id}", reason))
    if record:
        try:
            with store.begin() as conn:
                record_item_failure(conn, stored.id, reason)
        except StoreError as exc:  # counted in the run all the same; the database said why
            log.warning("could not record the failure: %s", exc, extra={"item": stored.id})


def _summarize_each(
    settings: Settings,
    store: Store,
    summarizer: Summarizer,
    items: Sequence[StoredItem],
    record: bool,
    progress: Progress | None,
    stop: StopFlag | None,
    failed: list[tuple[str, str]] | None,
) -> dict[int, Summary]:
    full = _full_texts(settings, items, store, record, failed)
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
            # One item's failure never stops the run; it is tried again next time, and after
            # MAX_ITEM_FAILURES times it is skipped for good.
            log.warning("summary failed: %s", exc, extra={"item": stored.id})
            _item_failed(store, stored, f"summary failed: {exc}", record, failed)
            summary = None
        if summary is not None:
            out[stored.id] = summary
            if record:
                try:
                    with store.begin() as conn:
                        save_summary(
                            conn,
                            stored.id,
                            summary,
                            now=datetime.now(UTC),
                            full_text=full.get(stored.id),
                        )
                except StoreError as exc:
                    # The issue still shows this summary; storing it is tried again next time.
                    log.warning("summary not stored: %s", exc, extra={"item": stored.id})
                    _item_failed(store, stored, f"summary not stored: {exc}", record, failed)
        if progress is not None:
            progress("summarize", n, len(items))
    return out


def _full_texts(
    settings: Settings,
    items: Sequence[StoredItem],
    store: Store,
    record: bool,
    failed: list[tuple[str, str]] | None,
) -> dict[int, str]:
    """Article page text for teaser items (under ``[summary] min_words``) of ``full_text`` feeds.

    A page that cannot be fetched is logged and counted as a failure of its item (recorded on
    it); the item is summarized from the feed's own text.
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
    # Pages fetched before the topic decision are kept with their item: never fetched twice.
    with store.connect() as conn:
        out = load_full_texts(conn, [s.id for s, _ in wanted])
    wanted = [(s, spec) for s, spec in wanted if s.id not in out]
    if not wanted:
        return out
    # Imported only when a feed asks for full text: trafilatura is slow to import.
    from digest.summarize.fulltext import FullTextRequest, fetch_full_texts

    everywhere = settings.fetch.allow_private
    requests = [
        FullTextRequest(s.item.url, allow_private=everywhere or spec.allow_private)
        for s, spec in wanted
    ]
    got = asyncio.run(fetch_full_texts(requests, timeout=settings.fetch.timeout))
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
            _item_failed(store, stored, f"full text: {value or 'empty page'}", record, failed)
    return out
