"""The one place that wires the stages together (used by the CLI, the daemon and the web front).

``collect.collect``: fetch -> parse -> store -> topics -> summarize; ``issue.build_issue`` /
``issue.send``: build issue -> render -> deliver; ``issue.run_once`` does both.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from typing import Protocol

from digest.models import RunCounts

__all__ = ["Progress", "StopFlag", "merge_counts", "stopped"]

#: ``progress(stage, done, total)``: called as units finish ("fetch": feeds, "summarize": items).
Progress = Callable[[str, int, int], None]


class StopFlag(Protocol):
    """Anything with ``is_set()`` (a ``threading.Event``): set it to stop after the current unit."""

    def is_set(self) -> bool: ...


def stopped(stop: StopFlag | None) -> bool:
    return stop is not None and stop.is_set()


def merge_counts(a: RunCounts, b: RunCounts) -> RunCounts:
    """Add two runs' counts (collect + send = one ``run --once`` line)."""
    kept = Counter(dict(a.kept_per_topic))
    kept.update(dict(b.kept_per_topic))
    return replace(
        a,
        feeds_ok=a.feeds_ok + b.feeds_ok,
        feeds_failed=a.feeds_failed + b.feeds_failed,
        feeds_not_modified=a.feeds_not_modified + b.feeds_not_modified,
        items_new=a.items_new + b.items_new,
        kept_per_topic=tuple(sorted(kept.items())),
        summarized=a.summarized + b.summarized,
        sent=a.sent + b.sent,
        retry=a.retry + b.retry,
        failed=a.failed + b.failed,
        issue_number=b.issue_number if b.issue_number is not None else a.issue_number,
        failures=a.failures + b.failures,
    )

