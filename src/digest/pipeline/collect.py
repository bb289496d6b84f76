"""Collect: fetch due feeds concurrently, parse new bodies on every core, store new items and
decide their topics (no summaries: ``summaries`` writes those for the items an issue takes).
A failing feed never stops the others.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from digest.config import Settings
from digest.errors import ParseError, StoreError
from digest.fetch import fetch_all_sync
from digest.models import (
    FeedSpec,
    FetchResult,
    FetchStatus,
    Item,
    ParsedFeed,
    RunCounts,
)
from digest.parse import POOL_THRESHOLD, ParseJob, ParsePool
from digest.pipeline import Progress, StopFlag, stopped
from digest.pipeline.articles import ArticleCandidate, article_candidates, decide_on_articles
from digest.pipeline.coverage import note_coverage
from digest.pipeline.relevance import decide_all
from digest.pipeline.wiring import fetch_options, make_decider
from digest.store import Store
from digest.store.db import savepoint
from digest.store.feeds import FeedState, record_fetch, set_content_hash, sync_feeds
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
    matcher = _MatcherSoon(settings)
    # The pool is started before fetching: its processes fork before this run's own threads
    # (fetch loop, matcher) exist.
    with ParsePool(workers) as pool, matcher:
        private = {s.url: s.allow_private for s in specs}
        results, jobs = _fetch(
            settings, private, due, pool, matcher, force=force, progress=progress, stop=stop
        )
        spec_of = {s.url: s for s in specs}
        outcomes = _store_results(
            settings, store, due, results, pool, jobs, matcher, spec_of, stop=stop, now=now
        )
        teasers = [c for o in outcomes.values() for c in o.articles]
        if teasers:
            # Pages fetched outside the store's transactions: no write lock held meanwhile.
            gained = decide_on_articles(settings, store, teasers, matcher.get(), stop=stop)
            for feed_id, topics in gained.items():
                outcomes[feed_id].kept.update(topics)
    return _counts(due, results, outcomes)


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


@dataclass
class _Outcome:
    """What became of one fetched feed: its parse outcome (None: nothing parsed), new items,
    kept items per topic, items that failed (with their reason) and items over the cap."""

    got: ParsedFeed | ParseError | None = None
    new: int = 0
    kept: Counter[str] = field(default_factory=Counter)
    failed: list[tuple[str, str]] = field(default_factory=list)
    over_cap: int = 0
    #: Teasers of a full-text feed to decide again on their article, after the store.
    articles: list[ArticleCandidate] = field(default_factory=list)


#: Parsed feeds stored in one transaction at most: fewer commits, a write lock held briefly.
STORE_BATCH = 50


def _store_results(
    settings: Settings,
    store: Store,
    due: Sequence[FeedState],
    results: Sequence[FetchResult],
    pool: ParsePool,
    jobs: dict[int, tuple[int, str]],
    matcher: _MatcherSoon,
    spec_of: dict[str, FeedSpec],
    *,
    stop: StopFlag | None,
    now: datetime,
) -> dict[int, _Outcome]:
    """Record every fetch; store each parsed feed's new items and topic decisions as soon as
    its parse is done (the pool parses the next ones meanwhile), in config order.

    Returns the outcome per feed id, for the feeds handled before ``stop`` was set.
    """
    outcomes: dict[int, _Outcome] = {}
    max_items = settings.fetch.max_items_per_feed
    # Feeds with nothing to parse (304, failures, a body seen before): one short transaction.
    with store.begin() as conn:
        for state, result in zip(due, results, strict=True):
            # A download abandoned for a stop is neither a success nor a failure of the feed.
            if state.id not in jobs and result.status is not FetchStatus.STOPPED:
                _record(conn, state, result, now)
                outcomes[state.id] = _Outcome()
    parsed = [(s, r) for s, r in zip(due, results, strict=True) if s.id in jobs]

    def store_batch(batch: Sequence[tuple[FeedState, FetchResult]]) -> None:
        # A feed's fetch state, its new items and their topic decisions land together or not
        # at all.
        with store.begin() as conn:
            for state, result in batch:
                index, digest = jobs[state.id]
                got = pool.outcome(index)
                spec = spec_of[state.url]
                try:
                    # One feed the database refuses fails alone, not the batch or the run.
                    with savepoint(conn):
                        outcomes[state.id] = _store_feed(
                            conn,
                            state,
                            result,
                            got,
                            digest,
                            spec,
                            matcher,
                            now,
                            cap=max_items,
                            min_words=settings.summary.min_words,
                            floor=settings.fetch.full_text_floor,
                        )
                except StoreError as exc:
                    reason = f"not stored: {exc}"[:300]
                    outcomes[state.id] = _Outcome(got=ParseError(state.url, reason))
                    with contextlib.suppress(StoreError), savepoint(conn):
                        _record(conn, state, result, now, parse_error=reason)

    start = 0
    while start < len(parsed):
        if stopped(stop):
            # Stopping: one last batch of what is parsed already; the rest waits for next run.
            ready = [p for p in parsed[start:] if pool.done(jobs[p[0].id][0])]
            store_batch(ready[:STORE_BATCH])
            break
        # The next feed in config order (waiting for its parse), then those after it whose
        # parse is already done: one transaction.
        end = start + 1
        while (
            end < len(parsed)
            and end - start < STORE_BATCH
            and pool.done(jobs[parsed[end][0].id][0])
        ):
            end += 1
        store_batch(parsed[start:end])
        start = end
    return outcomes


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
    outcome = _Outcome(got=got)
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


def _counts(
    due: Sequence[FeedState], results: Sequence[FetchResult], outcomes: dict[int, _Outcome]
) -> RunCounts:
    """The run's counts, feeds in config order (those left out by a stop are not counted)."""
    ok = failed = not_modified = new_items = over_cap = 0
    kept: Counter[str] = Counter()
    failures: list[tuple[str, str]] = []
    item_failures: list[tuple[str, str]] = []
    for state, result in zip(due, results, strict=True):
        if state.id not in outcomes:
            continue
        outcome = outcomes[state.id]
        got = outcome.got
        new_items += outcome.new
        over_cap += outcome.over_cap
        kept.update(outcome.kept)
        item_failures.extend(outcome.failed)
        parse_error = str(got.reason) if isinstance(got, ParseError) else None
        if result.status is FetchStatus.FAILED or parse_error:
            failed += 1
            reason = parse_error or result.error or "failed"
            failures.append((state.url, reason))
            log.warning("feed failed: %s", reason, extra={"feed": state.url})
        elif result.status is FetchStatus.NOT_MODIFIED or got is None:
            not_modified += 1
        else:
            ok += 1
    log.info(
        "fetched feeds",
        extra={
            "ok": ok,
            "failed": failed,
            "not_modified": not_modified,
            "new": new_items,
            "items_failed": len(item_failures),
        },
    )
    return RunCounts(
        feeds_ok=ok,
        feeds_failed=failed,
        feeds_not_modified=not_modified,
        items_new=new_items,
        kept_per_topic=tuple(sorted(kept.items())),
        failures=tuple(failures),
        items_failed=len(item_failures),
        items_over_cap=over_cap,
        item_failures=tuple(item_failures),
    )


def _fetch(
    settings: Settings,
    private: dict[str, bool],
    due: Sequence[FeedState],
    pool: ParsePool,
    matcher: _MatcherSoon,
    *,
    force: bool,
    progress: Progress | None,
    stop: StopFlag | None,
) -> tuple[list[FetchResult], dict[int, tuple[int, str]]]:
    """Fetch ``due`` concurrently, handing each changed body to ``pool`` as soon as it arrives.

    Returns the fetch results (in ``due`` order) and, per feed id whose body was submitted,
    its place in the pool and the body's hash. Bodies identical to the last one parsed
    (sha256 against ``content_hash``) are not parsed.
    """
    by_url: dict[str, FeedState] = {}
    for state in due:
        by_url.setdefault(state.fetch_url, state)
    jobs: dict[int, tuple[int, str]] = {}
    done = 0

    def submit(state: FeedState, result: FetchResult) -> None:
        if state.id in jobs or result.status is not FetchStatus.OK or result.content is None:
            return
        digest = hashlib.sha256(result.content).hexdigest()
        if digest == state.content_hash:
            return  # the same bytes as last time (a server without validators)
        index = pool.submit(
            ParseJob(
                content=result.content,
                url=result.final_url or state.fetch_url,
                fetched_at=datetime.now(UTC),
                content_type=result.content_type,
                max_items=settings.fetch.max_items_per_feed,
            )
        )
        jobs[state.id] = (index, digest)
        matcher.start()  # new items are likely: compile the topics while the rest downloads

    def on_result(result: FetchResult) -> None:
        nonlocal done
        done += 1
        state = by_url.get(result.url)
        if state is not None:
            submit(state, result)
        if progress is not None:
            progress("fetch", done, len(due))

    if progress is not None:
        progress("fetch", 0, len(due))
    everywhere = settings.fetch.allow_private
    requests = [
        # A forced fetch also drops the validators, so a 304 cannot hide the body.
        replace(
            s.request(conditional=not force),
            allow_private=everywhere or private.get(s.url, False),
        )
        for s in due
    ]
    results = fetch_all_sync(
        requests,
        fetch_options(settings),
        on_result=on_result,
        stop=None if stop is None else stop.is_set,
    )
    # A result the callback could not place (two feeds at one address) is parsed now.
    for state, result in zip(due, results, strict=True):
        submit(state, result)
    return results, jobs
