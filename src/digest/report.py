"""One line of end-to-end counts for a run (``format_counts``), shared by the CLI and the daemon."""

from __future__ import annotations

from typing import Any

from digest.models import RunCounts


def format_counts(counts: RunCounts) -> str:
    """``feeds 12 ok, 1 failed, 3 not modified, 1 unchanged · items 25 new · kept ...``."""
    feeds = f"feeds {counts.feeds_ok} ok, {counts.feeds_failed} failed"
    if counts.feeds_not_modified:
        feeds += f", {counts.feeds_not_modified} not modified"
    if counts.feeds_unchanged:
        feeds += f", {counts.feeds_unchanged} unchanged"
    kept = ", ".join(f"{topic} {n}" for topic, n in counts.kept_per_topic) or "none"
    parts = [
        feeds,
        _items(counts),
        f"kept {kept}",
        f"summarized {counts.summarized}",
        f"messages {counts.sent} sent, {counts.retry} retry, {counts.failed} failed"
        + (f", {counts.bounced} subscriber(s) marked bounced" if counts.bounced else ""),
    ]
    if counts.issue_number is not None:
        parts.append(f"issue #{counts.issue_number}")
    return " · ".join(parts)


def _items(counts: RunCounts) -> str:
    text = f"items {counts.items_new} new"
    if counts.items_failed:
        text += f", {counts.items_failed} failed"
    if counts.items_over_cap:
        text += f", {counts.items_over_cap} over the per-feed cap"
    return text


def counts_fields(counts: RunCounts) -> dict[str, Any]:
    """The same counts as flat ``extra={...}`` fields for structured (JSON) logs."""
    return {
        "feeds_ok": counts.feeds_ok,
        "feeds_failed": counts.feeds_failed,
        "feeds_not_modified": counts.feeds_not_modified,
        "feeds_unchanged": counts.feeds_unchanged,
        "items_new": counts.items_new,
        "items_failed": counts.items_failed,
        "items_over_cap": counts.items_over_cap,
        "kept": dict(counts.kept_per_topic),
        "summarized": counts.summarized,
        "sent": counts.sent,
        "retry": counts.retry,
        "failed": counts.failed,
        "bounced": counts.bounced,
        "issue": counts.issue_number,
    }
