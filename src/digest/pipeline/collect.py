"""Collect: fetch due feeds concurrently, parse new bodies on every core, store new items and
decide their topics (no summaries: ``summaries`` writes those for the items an issue takes).
A failing feed never stops the others.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import queue
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from digest.config import Settings
from digest.errors import ParseError, StoreError
from digest.models import (
    FeedSpec,
    FetchResult,
    FetchStatus,
    Item,
    ParsedFeed,
    RunCounts,
)
from digest.pipeline import Progress, StopFlag, stopped
from digest.pipeline.articles import ArticleCandidate, article_candidates, decide_on_articles
from digest.pipeline.coverage import note_coverage
from digest.pipeline.relevance import decide_all
from digest.pipeline.wiring import fetch_options, make_decider
from digest.reader.fetch import fetch_all_sync
from digest.reader.parse import POOL_THRESHOLD, ParseJob, ParsePool
from digest.store import Store
from digest.store.db import savepoint
from digest.store.feeds import (
    FeedState,
    record_fetch,
    record_fetches,
    set_content_hash,
    sync_feeds,
)
from digest.store.items import (
    add_topic_matches,
    insert_items,
)

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from digest.pipeline.relevance import Decider

# The topic matcher is imported when there is something to match: a run where every feed
# answers 304 never compiles it.

log = logging.getLogger(__name__)

STOPPED = FetchStatus.STOPPED

__all__ = ["collect"]


def collect(
    settings: Settings,
    store: Store,
    *,
    progress: Progress | None = None,
    stop: StopFlag | None = None,
    force: bool = False,
    now: datetime | None = None,
) -> RunCounts:
    """Fetch due feeds, parse changed bodies, store new items with their topic decisions;
    returns the counts of the run.

    Summaries are not written here but when an issue takes the item (``pipeline.issue``).
    """
    now = now or datetime.now(UTC)
    specs = settings.feed_specs()
    with store.begin() as conn:
        states = sync_feeds(conn, specs, now=now)
    due = [s for s in states if s.is_due(now, force=force)]
    skipped = len(states) - len(due)
    if skipped:
        log.info("%d feed(s) not due yet (backoff, Retry-After or max-age)", skipped)
    workers = settings.fetch.parse_workers or os.cpu_count() or 1
    if len(due) < POOL_THRESHOLD:
        workers = 1  # starting processes would cost more than parsing inline
    spec_of = {s.url: s for s in specs}
    feeds = [_Feed(state, spec_of[state.url]) for state in due]
    matcher = _MatcherSoon(settings)
    # The pool is started before fetching: its processes fork before this run's own threads
    # (fetch loop, matcher) exist.
    with ParsePool(workers) as pool, matcher:
        run = _Run(settings, store, pool, matcher, now=now, stop=stop)
        run.fetch_and_store(feeds, progress=progress)
        teasers = [c for f in feeds if f.outcome is not None for c in f.outcome.articles]
        if teasers:
            # Pages fetched outside the store's transactions: no write lock held meanwhile.
            gained = decide_on_articles(settings, store, teasers, matcher.get(), stop=stop)
            by_id = {f.state.id: f for f in feeds}
            for feed_id, topics in gained.items():
                outcome = by_id[feed_id].outcome
                if outcome is not None:
                    outcome.kept.update(topics)
    return _counts(feeds)


@dataclass
class _Feed:
    """One due feed carried through the run: its stored state and config entry, then what the
    fetch answered (body dropped once handed to the parse pool), its parse job and outcome."""

    state: FeedState
    spec: FeedSpec
    result: FetchResult | None = None
    #: Place in the parse pool and sha256 of the body, when a changed body was submitted.
    job: int | None = None
    digest: str | None = None
    outcome: _Outcome | None = None


class _MatcherSoon:
    """The topic matcher (and the rules read before it), compiled in a helper thread as soon
    as a changed body arrives.

    Compiling it (inflections from simplemma's dictionaries) takes about half a second: done
    while the feeds download, it is ready when their items are; a run where every feed answers
    304 never compiles it.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._helper: ThreadPoolExecutor | None = None
        self._matcher: Future[Decider] | None = None

    def __enter__(self) -> _MatcherSoon:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._helper is not None:
            self._helper.shutdown(wait=True, cancel_futures=True)

    def start(self) -> None:
        if self._matcher is None:
            self._helper = ThreadPoolExecutor(1, thread_name_prefix="digest-matcher")
            self._matcher = self._helper.submit(make_decider, self._settings)

    def get(self) -> Decider:
        self.start()
        assert self._matcher is not None
        return self._matcher.result()  # a ConfigError (bad regex) is raised here, as before


class _Wake:
    """What the parse pool puts in the store loop's queue when a parse has ended."""


_WAKE = _Wake()


@dataclass
class _Outcome:
    """What became of one fetched feed: whether a body was parsed and why it was not a feed,
    new items, kept items per topic, items that failed (with their reason) and items over the
    cap. The parsed feed itself is not kept: a run holds counts, not every feed's items."""

    parsed: bool = False
    parse_error: str | None = None
    new: int = 0
    kept: Counter[str] = field(default_factory=Counter)
    failed: list[tuple[str, str]] = field(default_factory=list)
    over_cap: int = 0
    #: Teasers of a full-text feed to decide again on their article, after the store.
    articles: list[ArticleCandidate] = field(default_factory=list)


#: Parsed feeds stored in one transaction at most: fewer commits, a write lock held briefly.
STORE_BATCH = 50
#: How often the store loop looks for finished parses without being told (the pool wakes it
#: as each parse ends; this only bounds a missed wake-up).
POLL = 0.5
#: Parsed feeds kept waiting behind a slower one earlier in config order before they are stored
#: out of order.
REORDER = 256
#: Seconds the store thread waits after an answer for more to arrive (one transaction for all).
GATHER = 0.02
#: Bodies handed to the parse pool and not stored yet, per parse worker, beyond which (on top of
#: ``REORDER``) no new download starts: memory holds a window of feeds, not a run's worth.
BACKLOG_PER_WORKER = 64


class _Run:
    """Fetch in a helper thread while this thread stores: each body goes to the parse pool as it
    arrives and each parsed feed is stored as soon as its parse is done, so memory holds the
    feeds in flight, not the run's bodies; a feed that answered 304 (or the same bytes) costs
    its request and one row update."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        pool: ParsePool,
        matcher: _MatcherSoon,
        *,
        now: datetime,
        stop: StopFlag | None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.pool = pool
        self.matcher = matcher
        self.now = now
        self.stop = stop
        # Fetched feeds, None once the fetch is over, and _WAKE when a parse has finished.
        self.arrived: queue.SimpleQueue[_Feed | _Wake | None] = queue.SimpleQueue()
        # Parse jobs submitted (fetch thread) and stored (this thread): their difference is the
        # backlog that pauses new downloads.
        self.submitted = 0
        self.stored = 0
        self.max_backlog = REORDER + BACKLOG_PER_WORKER * max(1, pool.workers)

    def fetch_and_store(self, feeds: Sequence[_Feed], *, progress: Progress | None) -> None:
        with ThreadPoolExecutor(1, thread_name_prefix="digest-fetch") as helper:
            fetching = helper.submit(self._fetch, feeds, progress)
            try:
                self._store_as_ready(feeds)
            finally:
                fetching.result()  # the fetch's own failure (a bug) is raised here

    # ------------------------------------------------------------------ fetch thread

    def _fetch(self, feeds: Sequence[_Feed], progress: Progress | None) -> None:
        try:
            self._fetch_all(feeds, progress)
        finally:
            self.arrived.put(None)

    def _fetch_all(self, feeds: Sequence[_Feed], progress: Progress | None) -> None:
        by_url: dict[str, list[_Feed]] = {}
        for feed in feeds:
            by_url.setdefault(feed.state.fetch_url, []).append(feed)
        settings, done = self.settings, 0

        def on_result(result: FetchResult) -> None:
            nonlocal done
            # Two config entries at one address share the request and the parse.
            for feed in by_url.get(result.url, ()):
                if feed.result is None:
                    done += 1
                    self._arrive(feed, result)
            if progress is not None:
                progress("fetch", done, len(feeds))

        if progress is not None:
            progress("fetch", 0, len(feeds))
        everywhere = settings.fetch.allow_private
        requests = [
            # Validators are sent even when forced: a 304 is the server's word that nothing
            # changed, and the body hash catches a server that sends the same bytes again.
            replace(
                group[0].state.request(),
                # Two entries at one address: private only if both say so.
                allow_private=everywhere or all(f.spec.allow_private for f in group),
            )
            for group in by_url.values()
        ]
        fetch_all_sync(
            requests,
            fetch_options(settings),
            on_result=on_result,
            stop=None if self.stop is None else self.stop.is_set,
            keep_content=False,
            pause=lambda: self.submitted - self.stored > self.max_backlog,
        )

    def _arrive(self, feed: _Feed, result: FetchResult) -> None:
        """A fetch answered: a changed body goes to the pool; the feed goes to the store loop."""
        body = result.content
        feed.result = replace(result, content=None)
        if result.status is FetchStatus.OK and body is not None:
            digest = hashlib.sha256(body).hexdigest()
            if digest != feed.state.content_hash:  # else: the same bytes as last time
                feed.digest = digest
                feed.job = self.pool.submit(
                    ParseJob(
                        content=body,
                        url=result.final_url or feed.state.fetch_url,
                        fetched_at=datetime.now(UTC),
                        content_type=result.content_type,
                        max_items=self.settings.fetch.max_items_per_feed,
                    ),
                    on_done=self._parsed,
                )
                self.submitted += 1
                self.matcher.start()  # new items are likely: compile while the rest download
        self.arrived.put(feed)

    def _parsed(self) -> None:
        """A parse ended (pool thread): wake the store loop, which may store it now."""
        self.arrived.put(_WAKE)

    # ------------------------------------------------------------------ store (this thread)

    def _store_as_ready(self, feeds: Sequence[_Feed]) -> None:
        """Store parsed feeds in config order (the first configured feed brings an item two
        feeds share), each as soon as it and those before it are done; past ``REORDER`` parsed
        feeds waiting behind a slow one, those are stored out of order: memory stays bounded
        and a slow site never stalls the run."""
        place = {id(f): i for i, f in enumerate(feeds)}
        done = [False] * len(feeds)
        head = 0  # the first feed in config order not handled yet
        waiting: dict[int, _Feed] = {}  # submitted to the pool, not stored yet, by place
        fetching = True
        while fetching or waiting:
            answered: list[_Feed] = []
            try:
                got = self.arrived.get(timeout=POLL if waiting else None)
                if got is not None:
                    # Let answers gather a moment: thousands of 304s land in a few dozen
                    # transactions, not one wake-up (and GIL hand-over) per answer.
                    time.sleep(GATHER)
                while True:
                    if got is None:
                        fetching = False
                    elif not isinstance(got, _Wake):
                        answered.append(got)
                    got = self.arrived.get_nowait()
            except queue.Empty:
                pass
            # Feeds with nothing to parse (304, failures, a body seen before): one transaction.
            # A download abandoned for a stop is neither a success nor a failure of the feed.
            plain = [
                f
                for f in answered
                if f.job is None and f.result is not None and f.result.status is not STOPPED
            ]
            if plain:
                with self.store.begin() as conn:
                    fetched = [(f.state, f.result) for f in plain if f.result is not None]
                    for url, warning in record_fetches(conn, fetched, self.now):
                        log.warning(warning, extra={"feed": url})
                for feed in plain:
                    feed.outcome = _Outcome()
            for feed in answered:
                if feed.job is None:
                    done[place[id(feed)]] = True
                else:
                    waiting[place[id(feed)]] = feed
            if stopped(self.stop):
                # Stopping: one last batch of what is parsed already; the rest waits.
                ready = sorted(i for i, f in waiting.items() if self.pool.done(f.job or 0))
                self._store_batch([waiting[i] for i in ready])
                waiting.clear()
                continue
            batch: list[_Feed] = []
            while head < len(feeds) and (
                done[head] or (head in waiting and self.pool.done(waiting[head].job or 0))
            ):
                if not done[head]:
                    batch.append(waiting.pop(head))
                    done[head] = True
                head += 1
            if len(waiting) > REORDER or (not fetching and waiting and not batch):
                # Behind a slow feed (or nothing more to come): what is parsed, in config order;
                # with nothing parsed and nothing to come, wait for the first one.
                ready = sorted(i for i, f in waiting.items() if self.pool.done(f.job or 0))
                ready = ready or ([min(waiting)] if not fetching else [])
                for i in ready:
                    batch.append(waiting.pop(i))
                    done[i] = True
            for start in range(0, len(batch), STORE_BATCH):
                self._store_batch(batch[start : start + STORE_BATCH])

    def _store_batch(self, batch: Sequence[_Feed]) -> None:
        """A feed's fetch state, its new items and their topic decisions land together or not
        at all; the parse outcome is let go once stored."""
        if not batch:
            return
        cap = self.settings.fetch.max_items_per_feed
        with self.store.begin() as conn:
            for feed in batch:
                assert feed.job is not None
                assert feed.result is not None
                assert feed.digest is not None
                got = self.pool.outcome(feed.job)
                try:
                    # One feed the database refuses fails alone, not the batch or the run.
                    with savepoint(conn):
                        feed.outcome = _store_feed(
                            conn,
                            feed.state,
                            feed.result,
                            got,
                            feed.digest,
                            feed.spec,
                            self.matcher,
                            self.now,
                            cap=cap,
                            min_words=self.settings.summary.min_words,
                            floor=self.settings.fetch.full_text_floor,
                        )
                except StoreError as exc:
                    reason = f"not stored: {exc}"[:300]
                    feed.outcome = _Outcome(parsed=True, parse_error=reason)
                    with contextlib.suppress(StoreError), savepoint(conn):
                        _record(conn, feed.state, feed.result, self.now, parse_error=reason)
        for feed in batch:
            self.pool.forget(feed.job or 0)
        self.stored += len(batch)


def _store_feed(
    conn: Connection,
    state: FeedState,
    result: FetchResult,
    got: ParsedFeed | ParseError,
    digest: str,
    spec: FeedSpec,
    matcher: _MatcherSoon,
    now: datetime,
    *,
    cap: int,
    min_words: int = 40,
    floor: float = 0.25,
) -> _Outcome:
    """Record one parsed feed: fetch state, content hash, new items and their topics.

    At most ``cap`` items, the newest, are stored; an item the database refuses, or whose link
    no client can request, fails alone (recorded, counted), never its feed or the run.
    """
    parse_error = str(got.reason) if isinstance(got, ParseError) else None
    _record(conn, state, result, now, parse_error=parse_error)
    outcome = _Outcome(parsed=True, parse_error=parse_error)
    if isinstance(got, ParseError):
        return outcome
    set_content_hash(conn, state.id, digest, title=got.title, ttl=got.ttl, now=now)
    items: Sequence[Item] = got.items
    outcome.over_cap = got.over_cap
    if len(items) > cap:  # parsed elsewhere without the cap
        outcome.over_cap += len(items) - cap
        items = sorted(items, key=lambda i: i.published, reverse=True)[:cap]
    if outcome.over_cap:
        log.warning(
            "feed has %d items: the newest %d kept, the rest not stored",
            len(items) + outcome.over_cap,
            len(items),
            extra={"feed": state.url},
        )
    refused: list[tuple[Item, str]] = []
    new = insert_items(conn, state.id, items, now=now, failed=refused)
    for item, reason in refused:
        outcome.failed.append((item.url or item.guid, reason))
    usable = []
    for item_id, item in new:
        if item.problem:
            # Its link is the bad part, so item.url is the feed's site: name the feed and title.
            outcome.failed.append((f"{state.url} item {item.title[:100]!r}", item.problem))
        else:
            usable.append((item_id, item))
    for where, reason in outcome.failed:
        log.warning("item failed: %s", reason, extra={"feed": state.url, "item": where[:300]})
    outcome.new = len(new)
    # The source as the store names it: the configured name, the feed's title, its URL.
    source = spec.name or got.title or state.url
    fresh = {item.guid for _, item in new} | {item.guid for item, _ in refused}
    again = [i for i in items if i.guid not in fresh and not i.problem]
    if again:
        # A link another feed brought first: coverage of that story, not a new item.
        outcome.kept.update(
            note_coverage(
                conn, state.id, again, decider=matcher.get, spec=spec, source=source, now=now
            )
        )
    if usable:
        decider = matcher.get()
        decisions = decide_all(decider, usable, spec, source)
        add_topic_matches(conn, decisions)
        outcome.articles = article_candidates(
            decisions,
            dict(usable),
            spec,
            feed_id=state.id,
            source=source,
            decider=decider,
            min_words=min_words,
            floor=floor,
        )
        outcome.kept.update(m.topic_id for _, ms in decisions for m in ms if m.kept)
    return outcome


def _record(
    conn: Connection,
    state: FeedState,
    result: FetchResult,
    now: datetime,
    *,
    parse_error: str | None = None,
) -> None:
    # The state read at the start of this run is current: the run's lock keeps other writers off.
    warnings = record_fetch(conn, state.id, result, now, parse_error=parse_error, state=state)
    for warning in warnings:
        log.warning(warning, extra={"feed": state.url})


def _counts(feeds: Sequence[_Feed]) -> RunCounts:
    """The run's counts, feeds in config order (those left out by a stop are not counted).

    "Not modified" is what the servers answered (304); a 200 whose body is the same bytes as
    last time is "unchanged".
    """
    ok = failed = not_modified = unchanged = new_items = over_cap = 0
    kept: Counter[str] = Counter()
    failures: list[tuple[str, str]] = []
    item_failures: list[tuple[str, str]] = []
    for feed in feeds:
        outcome, result = feed.outcome, feed.result
        if outcome is None or result is None:
            continue
        new_items += outcome.new
        over_cap += outcome.over_cap
        kept.update(outcome.kept)
        item_failures.extend(outcome.failed)
        parse_error = outcome.parse_error
        if result.status is FetchStatus.FAILED or parse_error:
            failed += 1
            reason = parse_error or result.error or "failed"
            failures.append((feed.state.url, reason))
            log.warning("feed failed: %s", reason, extra={"feed": feed.state.url})
        elif result.status is FetchStatus.NOT_MODIFIED:
            not_modified += 1
        elif not outcome.parsed:
            unchanged += 1
        else:
            ok += 1
    log.info(
        "fetched feeds",
        extra={
            "ok": ok,
            "failed": failed,
            "not_modified": not_modified,
            "unchanged": unchanged,
            "new": new_items,
            "items_failed": len(item_failures),
        },
    )
    return RunCounts(
        feeds_ok=ok,
        feeds_failed=failed,
        feeds_not_modified=not_modified,
        feeds_unchanged=unchanged,
        items_new=new_items,
        kept_per_topic=tuple(sorted(kept.items())),
        failures=tuple(failures),
        items_failed=len(item_failures),
        items_over_cap=over_cap,
        item_failures=tuple(item_failures),
    )
