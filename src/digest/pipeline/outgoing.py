"""``send`` and ``run --once`` behind a cheap look at the store: the issue side (summarizers,
renderer, senders and what they import) is loaded only when there is something to build or send.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from digest.config import Settings
from digest.models import RunCounts
from digest.pipeline import Progress, StopFlag, merge_counts, stopped
from digest.store import Store
from digest.store.deliveries import unfinished_issue_numbers
from digest.store.issues import last_period_end
from digest.store.items import any_kept_items
from digest.store.locks import Lease
from digest.tokens import secret_from_env

# The same logger and line as ``issue.send`` when it finds nothing: the log reads the same.
log = logging.getLogger("digest.pipeline.issue")


def nothing_to_send(settings: Settings, store: Store, *, now: datetime | None = None) -> bool:
    """True when ``issue.send`` would certainly find nothing: no unfinished issue, no review
    desk to consult (``[review] mode = "required"`` always takes the full path), and no kept
    item since the last issue's period. Two indexed queries; False when in doubt."""
    if settings.review.required:
        return False
    now = now or datetime.now(UTC)
    not_before = now - timedelta(days=settings.digest.window_days)
    with store.connect() as conn:
        if unfinished_issue_numbers(conn):
            return False
        since = last_period_end(conn)
        return not any_kept_items(conn, since=since, until=now, not_before=not_before)


def send(
    settings: Settings,
    store: Store,
    *,
    dry_run: bool = False,
    progress: Progress | None = None,
    stop: StopFlag | None = None,
    lease: Lease | None = None,
) -> RunCounts:
    """``issue.send``, without importing the issue side when there is nothing to send."""
    if not dry_run:
        # As ``issue.send``: a missing secret is reported even when nothing is new.
        secret_from_env()
    if nothing_to_send(settings, store):
        log.info("no new items: nothing sent")
        return RunCounts()
    from digest.pipeline import issue

    return issue.send(settings, store, dry_run=dry_run, progress=progress, stop=stop, lease=lease)


def run_once(
    settings: Settings,
    store: Store,
    *,
    dry_run: bool = False,
    progress: Progress | None = None,
    stop: StopFlag | None = None,
    force: bool = False,
) -> RunCounts:
    """``collect`` then ``send``: what ``digest run --once`` does (the daemon runs them apart)."""
    from digest.pipeline.collect import collect

    collected = collect(settings, store, progress=progress, stop=stop, force=force)
    if stopped(stop):
        return collected
    return merge_counts(
        collected, send(settings, store, dry_run=dry_run, progress=progress, stop=stop)
    )
