"""Where the stages meet the store: ``collect`` (fetch -> parse -> store -> topics, no summaries),
``issue`` (next issue -> ``summaries`` -> render -> ``deliver``), ``wiring`` (stages from settings).
Callers import those modules; this one holds what they share: progress, stop flag, counts.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace

from digest.models import RunCounts

__all__ = ["Progress", "StopFlag", "merge_counts", "pause", "stopped"]

#: ``progress(stage, done, total)``: called as units finish ("fetch": feeds, "summarize": items).
Progress = Callable[[str, int, int], None]


#: Set it (SIGTERM, Ctrl-C) and the run stops after the current unit (one feed, one message).
StopFlag = threading.Event


def stopped(stop: StopFlag | None) -> bool:
    return stop is not None and stop.is_set()


def pause(seconds: float, stop: StopFlag | None) -> bool:
    """Sleep (interruptibly when ``stop`` is given); True when stopped."""
    if stop is not None:
        return stop.wait(seconds)
    time.sleep(seconds)
    return False


def merge_counts(a: RunCounts, b: RunCounts) -> RunCounts:
    """Add two runs' counts (collect + send = one ``run --once`` line)."""
    kept = Counter(dict(a.kept_per_topic))
    kept.update(dict(b.kept_per_topic))
    return replace(
        a,
        feeds_ok=a.feeds_ok + b.feeds_ok,
        feeds_failed=a.feeds_failed + b.feeds_failed,
        feeds_not_modified=a.feeds_not_modified + b.feeds_not_modified,
        feeds_unchanged=a.feeds_unchanged + b.feeds_unchanged,
        items_new=a.items_new + b.items_new,
        kept_per_topic=tuple(sorted(kept.items())),
        summarized=a.summarized + b.summarized,
        sent=a.sent + b.sent,
        retry=a.retry + b.retry,
        failed=a.failed + b.failed,
        bounced=a.bounced + b.bounced,
        issue_number=b.issue_number if b.issue_number is not None else a.issue_number,
        failures=a.failures + b.failures,
        items_failed=a.items_failed + b.items_failed,
        items_over_cap=a.items_over_cap + b.items_over_cap,
        item_failures=a.item_failures + b.item_failures,
        waiting=b.waiting if b.waiting is not None else a.waiting,
    )
