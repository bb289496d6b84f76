"""Prometheus metrics of the daemon, and the per-job bookkeeping that /healthz judges.

Each daemon owns one ``Metrics`` (its own CollectorRegistry, so tests and the CLI never share
state); the feed and delivery gauges are read from the database at scrape time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import case, func, select

from digest.errors import StoreError
from digest.models import RunCounts
from digest.store import schema
from digest.store.db import Store

#: Job durations go from a 304-only fetch (well under a second) to a large send (an hour).
_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, float("inf"))

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# A `*_created` series next to every counter doubles the scrape for nothing an alert uses.
disable_created_metrics()  # type: ignore[no-untyped-call]


@dataclass(frozen=True, slots=True)
class JobStatus:
    """How one scheduled job has been doing since the daemon started."""

    job: str
    runs: int = 0
    consecutive_failures: int = 0
    last_success: datetime | None = None
    last_failure: datetime | None = None
    last_error: str | None = None
    last_duration: float | None = None


def run_failure(job: str, counts: RunCounts) -> str | None:
    """Why a run that returned should still count as failed, or None when it did its job.

    Every feed failing (network down, DNS broken) or no message going out while some failed is
    what an operator must hear about; a few bad feeds or retried messages are normal weather.
    """
    if (
        job == "fetch"
        and counts.feeds_failed
        and not (counts.feeds_ok or counts.feeds_not_modified or counts.feeds_unchanged)
    ):
        return f"all {counts.feeds_failed} feeds failed"
    if job in ("send", "resume") and counts.failed and not counts.sent:
        return f"all {counts.failed} messages failed"
    return None


class Metrics:
    """The daemon's counters, histograms and gauges, plus each job's ``JobStatus``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.feeds_fetched = Counter(
            "digest_feeds_fetched", "Feeds fetched successfully (including 304).", registry=r
        )
        self.feeds_not_modified = Counter(
            "digest_feeds_not_modified", "Feeds that answered 304 Not Modified.", registry=r
        )
        self.feeds_failed = Counter("digest_feeds_failed", "Feed fetches that failed.", registry=r)
        self.items_new = Counter("digest_items_new", "New items stored.", registry=r)
        self.items_kept = Counter(
            "digest_items_kept", "New items kept by a topic.", ["topic"], registry=r
        )
        self.summarized = Counter("digest_items_summarized", "Summaries written.", registry=r)
        self.issues = Counter("digest_issues", "Issues built and sent.", registry=r)
        self.messages_sent = Counter("digest_messages_sent", "Messages delivered.", registry=r)
        self.messages_failed = Counter(
            "digest_messages_failed", "Messages given up on (permanent failures).", registry=r
        )
        self.messages_retried = Counter(
            "digest_messages_retried", "Messages left for a later retry.", registry=r
        )
        self.job_runs = Counter(
            "digest_job_runs", "Scheduled job runs by outcome.", ["job", "outcome"], registry=r
        )
        self.job_duration = Histogram(
            "digest_job_duration_seconds",
            "Duration of scheduled jobs.",
            ["job"],
            buckets=_BUCKETS,
            registry=r,
        )
        self.job_last_success = Gauge(
            "digest_job_last_success_timestamp_seconds",
            "Unix time of the last successful run of each job.",
            ["job"],
            registry=r,
        )
        self.job_consecutive_failures = Gauge(
            "digest_job_consecutive_failures", "Failed runs in a row, per job.", ["job"], registry=r
        )
        self.jobs_missed = Counter(
            "digest_jobs_missed",
            "Runs skipped: missed beyond the catch-up delay.",
            ["job"],
            registry=r,
        )
        self.pruned = Counter(
            "digest_pruned_rows",
            "Rows removed by the prune job ([storage] retention), per kind.",
            ["table"],
            registry=r,
        )
        self.config_reload_errors = Counter(
            "digest_config_reload_errors", "Config reloads refused (last good kept).", registry=r
        )
        self.up_since = Gauge(
            "digest_daemon_start_timestamp_seconds", "Unix time the daemon started.", registry=r
        )
        self._lock = threading.Lock()
        self._jobs: dict[str, JobStatus] = {}

    # ------------------------------------------------------------------ recording

    def record_counts(self, counts: RunCounts) -> None:
        """Add one pipeline run's counts to the counters."""
        self.feeds_fetched.inc(counts.feeds_ok + counts.feeds_not_modified + counts.feeds_unchanged)
        self.feeds_not_modified.inc(counts.feeds_not_modified)
        self.feeds_failed.inc(counts.feeds_failed)
        self.items_new.inc(counts.items_new)
        for topic, n in counts.kept_per_topic:
            self.items_kept.labels(topic=topic).inc(n)
        self.summarized.inc(counts.summarized)
        if counts.issue_number is not None and counts.sent:
            self.issues.inc()
        self.messages_sent.inc(counts.sent)
        self.messages_failed.inc(counts.failed)
        self.messages_retried.inc(counts.retry)

    def record_pruned(self, removed: tuple[tuple[str, int], ...]) -> None:
        """Add one prune run's removed rows (``(kind, n)``) to ``digest_pruned_rows``."""
        for table, n in removed:
            self.pruned.labels(table=table).inc(n)

    def job_succeeded(self, job: str, duration: float) -> None:
        now = datetime.now(UTC)
        self.job_runs.labels(job=job, outcome="ok").inc()
        self.job_duration.labels(job=job).observe(duration)
        self.job_last_success.labels(job=job).set(now.timestamp())
        self.job_consecutive_failures.labels(job=job).set(0)
        with self._lock:
            old = self._jobs.get(job, JobStatus(job))
            self._jobs[job] = replace(
                old,
                runs=old.runs + 1,
                consecutive_failures=0,
                last_success=now,
                last_duration=duration,
            )

    def job_idle(self, job: str, duration: float, outcome: str = "idle") -> None:
        """A run with nothing to do (every feed backing off) or cut short by a stop
        (``outcome="stopped"``): neither success nor failure."""
        self.job_runs.labels(job=job, outcome=outcome).inc()
        self.job_duration.labels(job=job).observe(duration)
        with self._lock:
            old = self._jobs.get(job, JobStatus(job))
            self._jobs[job] = replace(old, runs=old.runs + 1, last_duration=duration)

    def job_failed(self, job: str, duration: float, error: str) -> None:
        now = datetime.now(UTC)
        self.job_runs.labels(job=job, outcome="failed").inc()
        self.job_duration.labels(job=job).observe(duration)
        with self._lock:
            old = self._jobs.get(job, JobStatus(job))
            new = replace(
                old,
                runs=old.runs + 1,
                consecutive_failures=old.consecutive_failures + 1,
                last_failure=now,
                last_error=error,
                last_duration=duration,
            )
            self._jobs[job] = new
        self.job_consecutive_failures.labels(job=job).set(new.consecutive_failures)

    def job_missed(self, job: str) -> None:
        self.jobs_missed.labels(job=job).inc()

    def jobs(self) -> dict[str, JobStatus]:
        with self._lock:
            return dict(self._jobs)

    # ------------------------------------------------------------------ exposition

    def watch_store(self, store: Store) -> None:
        """Also expose feed health and delivery backlog, read from ``store`` at each scrape."""
        self.registry.register(StoreCollector(store))

    def exposition(self) -> bytes:
        """The text format Prometheus scrapes."""
        return generate_latest(self.registry)


class StoreCollector(Collector):
    """Gauges computed from the database: feeds by health, deliveries by state."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterator[GaugeMetricFamily]:
        feeds = GaugeMetricFamily(
            "digest_feeds", "Configured feeds by health (ok, failing, disabled).", labels=["state"]
        )
        deliveries = GaugeMetricFamily(
            "digest_deliveries", "Deliveries of all issues by state.", labels=["state"]
        )
        subscribers = GaugeMetricFamily(
            "digest_subscribers",
            "Subscribers by status (active, unsubscribed, bounced).",
            labels=["status"],
        )
        bounces = GaugeMetricFamily(
            "digest_bounces",
            "Bounces, complaints and mailed unsubscribes received, by kind.",
            labels=["kind"],
        )
        f = schema.feeds.c
        state = case((f.disabled, "disabled"), (f.failures > 0, "failing"), else_="ok")
        started = time.monotonic()
        try:
            with self.store.connect() as conn:
                by_feed: dict[str, int] = dict(
                    conn.execute(select(state, func.count()).group_by(state)).all()
                )
                d = schema.deliveries.c
                by_delivery: dict[str, int] = dict(
                    conn.execute(select(d.state, func.count()).group_by(d.state)).all()
                )
                s = schema.subscribers.c
                by_status: dict[str, int] = dict(
                    conn.execute(select(s.status, func.count()).group_by(s.status)).all()
                )
                b = schema.bounces.c
                by_kind: dict[str, int] = dict(
                    conn.execute(select(b.kind, func.count()).group_by(b.kind)).all()
                )
                dr = schema.drafts.c
                since = conn.execute(
                    select(func.min(dr.created)).where(
                        dr.status == "open", dr.approved_at.is_(None)
                    )
                ).scalar()
        except StoreError:
            # A scrape must not fail because the database is busy; the job metrics still tell.
            return
        waited = 0.0
        if since is not None:
            opened = since if since.tzinfo else since.replace(tzinfo=UTC)
            waited = max(0.0, (datetime.now(UTC) - opened).total_seconds())
        waiting = GaugeMetricFamily(
            "digest_issue_waiting_seconds",
            "How long the draft of the next issue has waited for approval (0: none waits).",
        )
        waiting.add_metric([], waited)
        yield waiting
        for name in ("ok", "failing", "disabled"):
            feeds.add_metric([name], float(by_feed.get(name, 0)))
        for name, n in sorted(by_delivery.items()):
            deliveries.add_metric([str(name)], float(n))
        for name in ("active", "unsubscribed", "bounced"):
            subscribers.add_metric([name], float(by_status.get(name, 0)))
        for name in ("hard", "soft", "policy", "complaint", "unsubscribe"):
            bounces.add_metric([name], float(by_kind.get(name, 0)))
        yield feeds
        yield deliveries
        yield subscribers
        yield bounces
        scrape = GaugeMetricFamily(
            "digest_store_scrape_seconds", "Time spent reading the database for this scrape."
        )
        scrape.add_metric([], time.monotonic() - started)
        yield scrape
