"""The daemon (`digest run`): APScheduler runs fetch, send and prune on their crontabs, one per
database.

Jobs live in the same database (SQLAlchemyJobStore), so a send missed while the daemon was down
runs once when it is back within ``[schedule] catch_up``; the config is re-read at each job.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.events import (
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    EVENT_JOB_SUBMITTED,
    JobEvent,
    JobSubmissionEvent,
)
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_RUNNING, STATE_STOPPED
from apscheduler.triggers.interval import IntervalTrigger

from digest import config
from digest.config import Settings, redact_url
from digest.errors import ConfigError, DigestError, LockedError
from digest.infra.healthd import Health, HealthServer
from digest.infra.metrics import Metrics, run_failure
from digest.infra.signals import stop_on_signals
from digest.models import RunCounts
from digest.pipeline import merge_counts
from digest.pipeline.bounces import poll_mailbox
from digest.pipeline.collect import collect
from digest.pipeline.deliver import deliver_issue, unfinished_issues
from digest.pipeline.draft import build_draft
from digest.pipeline.editors import notify_editors, waiting_since
from digest.pipeline.issue import delivery_counts, send
from digest.pipeline.prune import format_pruned, prune
from digest.report import counts_fields, format_counts
from digest.store import Store, open_store
from digest.store.locks import STANDBY_PREFIX, Lease, exclusive, holder_of
from digest.tokens import secret_from_env

log = logging.getLogger(__name__)

#: Table APScheduler keeps its jobs in (next run times survive restarts).
JOBS_TABLE = "apscheduler_jobs"
#: A run starting this late after its scheduled time is a catch-up, and is logged as one.
_CATCH_UP_NOTICE = 2.0
#: The running daemon: jobs are stored by reference (module:function), so they find it here.
_DAEMON: Daemon | None = None


def fetch_job() -> None:
    """Scheduled: fetch every feed and store what is new."""
    if _DAEMON is not None:
        _DAEMON.run_job("fetch")


def send_job() -> None:
    """Scheduled: build the next issue and send it."""
    if _DAEMON is not None:
        _DAEMON.run_job("send")


def prune_job() -> None:
    """Scheduled: remove what is older than ``[storage] retention``, in short batches."""
    if _DAEMON is not None:
        _DAEMON.run_job("prune")


def resume_job() -> None:
    """Once at startup: finish delivering issues a stop or a crash left unfinished."""
    if _DAEMON is not None:
        _DAEMON.run_job("resume")


def bounces_job() -> None:
    """Scheduled (when ``[bounces] host`` is set): read the bounce mailbox."""
    if _DAEMON is not None:
        _DAEMON.run_job("bounces")


def draft_job() -> None:
    """Scheduled (``[review] draft``): build the draft and mail each editor a link to it."""
    if _DAEMON is not None:
        _DAEMON.run_job("draft")


_JOBS: dict[str, Callable[[], None]] = {
    "fetch": fetch_job,
    "send": send_job,
    "draft": draft_job,
    "prune": prune_job,
}


def _draft(settings: Settings, store: Store, stop: threading.Event) -> RunCounts:
    view, _ = build_draft(settings, store)
    if view is None:
        log.info("no new items: no draft to review")
        return RunCounts()
    notify_editors(settings, store, secret_from_env(), reminder=False)
    return RunCounts(waiting=None if view.draft.approved else view.number)


def _send(settings: Settings, store: Store, stop: threading.Event) -> RunCounts:
    lease = _DAEMON.lease if _DAEMON is not None else None
    counts = send(settings, store, stop=stop, deadline=True, lease=lease)
    if counts.waiting is not None and settings.review.required:
        # The send time with no approval ([review] on_deadline = "hold"): nothing went out.
        # Editors who were never told (no draft job) get the link; the others one reminder.
        notify_editors(settings, store, secret_from_env(), reminder=None)
    return counts


def _bounces(settings: Settings, store: Store, stop: threading.Event) -> RunCounts:
    report = poll_mailbox(settings, store)
    log.info(
        "bounce mailbox: %d message(s) processed, %d matched, %d bounced, %d unsubscribed",
        report.processed,
        report.matched,
        report.bounced,
        report.unsubscribed,
        extra={"job": "bounces"},
    )
    return RunCounts()


def _resume(settings: Settings, store: Store, stop: threading.Event) -> RunCounts:
    # Only the interrupted deliveries: `send` would also build a new issue from the items
    # fetched since, and subscribers would get two issues in a row.
    counts = RunCounts()
    for number in unfinished_issues(store):
        if stop.is_set():
            break
        report = deliver_issue(settings, store, number, stop=stop)
        counts = merge_counts(counts, delivery_counts(report, number))
    return counts


_PIPELINE: dict[str, Callable[[Settings, Store, threading.Event], RunCounts]] = {
    "fetch": lambda settings, store, stop: collect(settings, store, stop=stop),
    "send": _send,
    "draft": _draft,
    "resume": _resume,
    "bounces": _bounces,
}


class _Scheduler(BackgroundScheduler):  # type: ignore[misc]  # (untyped library)
    def _process_jobs(self) -> float | None:
        # APScheduler 3 wakes its thread once more after shutdown(); that last pass cannot
        # submit a due job any more but still moves its next run time on, so a send missed while
        # stopping (or a catch-up found at startup) would be dropped (agronholm/apscheduler#285).
        if self.state == STATE_STOPPED:
            return None
        result: float | None = super()._process_jobs()
        return result


class Daemon:
    """A scheduler plus the last good settings, the metrics and the stop/reload flags."""

    def __init__(self, config_path: Path | None, settings: Settings, store: Store) -> None:
        self.config_path = config_path
        self.settings = settings
        self.store = store
        self.metrics = Metrics()
        self.metrics.watch_store(store)
        #: The database lock while serving: a new issue is stored only while it is ours.
        self.lease: Lease | None = None
        #: Set by SIGTERM/SIGINT: the running job finishes its unit of work and returns.
        self.stop = threading.Event()
        self.reload_requested = threading.Event()
        self._settings_lock = threading.Lock()
        #: Scheduled time of each submitted run, and of runs a stop kept from starting.
        self._due: dict[str, datetime] = {}
        self._not_run: dict[str, datetime] = {}
        self.jobstore = SQLAlchemyJobStore(engine=store.engine, tablename=JOBS_TABLE)
        self.scheduler = _Scheduler(
            jobstores={"default": self.jobstore, "memory": MemoryJobStore()},
            # One worker: fetch and send never run at the same time against the same database.
            executors={"default": ThreadPoolExecutor(max_workers=1)},
            job_defaults=self._job_defaults(settings),
            timezone=ZoneInfo(settings.digest.timezone),
        )
        self.scheduler.add_listener(
            self._on_event, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES | EVENT_JOB_SUBMITTED
        )

    @staticmethod
    def _job_defaults(settings: Settings) -> dict[str, Any]:
        return {
            "coalesce": True,
            "max_instances": 1,
            "misfire_grace_time": settings.schedule.catch_up_seconds,
        }

    # ------------------------------------------------------------------ config

    def reload(self, why: str) -> Settings:
        """Re-read the config; an invalid one is logged (file and key) and the last good kept."""
        try:
            new = config.load(self.config_path)
        except ConfigError as exc:
            self.metrics.config_reload_errors.inc()
            log.error(
                "config not reloaded, keeping the last good one: %s",
                exc,
                extra={"reason": why},
            )
            return self.settings
        with self._settings_lock:
            old, self.settings = self.settings, new
        if new.storage.url != old.storage.url:
            log.warning(
                "storage.url changed; restart the daemon to use the new database",
                extra={"storage": redact_url(new.storage.url)},
            )
        if (
            new.schedule,
            new.digest.timezone,
            new.review,
            new.bounces,
            new.storage.retention.enabled,
        ) != (
            old.schedule,
            old.digest.timezone,
            old.review,
            old.bounces,
            old.storage.retention.enabled,
        ):
            self.sync_jobs()
        if why == "SIGHUP":
            log.info("config reloaded", extra={"config": new.source})
        return new

    def sync_jobs(self) -> None:
        """Make the stored jobs match the config, keeping a stored next run time when unchanged.

        Re-adding an unchanged job would recompute its next run from now and silently drop a
        run missed while the daemon was down: only a changed crontab reschedules.
        """
        s = self.settings
        grace = s.schedule.catch_up_seconds
        wanted = [("fetch", s.schedule.fetch), ("send", s.schedule.send)]
        if s.review.required and s.review.draft:
            wanted.append(("draft", s.review.draft))
        elif self.scheduler.get_job("draft") is not None:
            self.scheduler.remove_job("draft")
        if s.storage.retention.enabled:
            wanted.append(("prune", s.schedule.prune))
        elif self.scheduler.get_job("prune") is not None:  # everything kept forever now
            self.scheduler.remove_job("prune")
        for job_id, expr in wanted:
            trigger = expr.trigger(s.digest.timezone)
            job = self.scheduler.get_job(job_id)
            if job is None:
                self.scheduler.add_job(
                    _JOBS[job_id], trigger, id=job_id, name=job_id, **self._job_defaults(s)
                )
                continue
            if repr(job.trigger) != repr(trigger):
                self.scheduler.reschedule_job(job_id, trigger=trigger)
                log.info("rescheduled %s: %s", job_id, expr, extra={"job": job_id})
            if job.misfire_grace_time != grace:
                self.scheduler.modify_job(job_id, misfire_grace_time=grace)
        self._sync_bounces()

    def _sync_bounces(self) -> None:
        """The bounce mailbox poll: an interval job kept in memory (a missed poll needs no
        catch-up: the messages wait in the mailbox)."""
        b = self.settings.bounces
        job = self.scheduler.get_job("bounces")
        if not b.host:
            if job is not None:
                self.scheduler.remove_job("bounces")
            return
        trigger = IntervalTrigger(seconds=max(1.0, b.poll_every.seconds))
        if job is None:
            self.scheduler.add_job(
                bounces_job,
                trigger,
                id="bounces",
                name="bounces",
                jobstore="memory",
                coalesce=True,
                max_instances=1,
            )
        elif repr(job.trigger) != repr(trigger):
            self.scheduler.reschedule_job("bounces", trigger=trigger)

    # ------------------------------------------------------------------ jobs

    def run_job(self, job: str) -> None:
        """One scheduled run: reload config, run the pipeline, log one line of counts."""
        with self._settings_lock:
            due = self._due.pop(job, None)
        if self.stop.is_set():
            # Queued behind another job when the stop came: it runs when the daemon is back.
            if due is not None and job in _JOBS:
                self._not_run[job] = due
            return
        settings = self.reload("job")
        started = time.monotonic()
        log.info("%s started", job, extra={"job": job})
        try:
            if job == "prune":
                self._prune(settings, started)
                return
            counts = _PIPELINE[job](settings, self.store, self.stop)
        except DigestError as exc:
            self._failed(job, started, str(exc))
            return
        except Exception as exc:  # a bug in one run must not take the daemon down
            log.exception("%s crashed", job, extra={"job": job})
            self._failed(job, started, f"{type(exc).__name__}: {exc}")
            return
        duration = time.monotonic() - started
        self.metrics.record_counts(counts)
        fields = {"job": job, "duration": round(duration, 3), **counts_fields(counts)}
        problem = run_failure(job, counts)
        attempted = (
            counts.feeds_ok
            + counts.feeds_not_modified
            + counts.feeds_unchanged
            + counts.feeds_failed
        )
        if self.stop.is_set():
            # Cut short by SIGTERM: what was done is recorded, but it is neither a success
            # (the last-success time would lie) nor a failure (the next run does the rest).
            self.metrics.job_idle(job, duration, outcome="stopped")
            log.info("%s stopped early: %s", job, format_counts(counts), extra=fields)
        elif job == "fetch" and not attempted:
            # Every feed is backing off: a failure streak must neither grow nor reset.
            self.metrics.job_idle(job, duration)
            log.info("%s done: no feed due · %s", job, format_counts(counts), extra=fields)
        elif problem:
            self.metrics.job_failed(job, duration, problem)
            log.error("%s failed: %s · %s", job, problem, format_counts(counts), extra=fields)
        else:
            self.metrics.job_succeeded(job, duration)
            log.info("%s done: %s", job, format_counts(counts), extra=fields)

    def _prune(self, settings: Settings, started: float) -> None:
        counts = prune(settings, self.store, stop=self.stop)
        duration = time.monotonic() - started
        self.metrics.record_pruned(counts.tables())
        fields = {"job": "prune", "duration": round(duration, 3), **dict(counts.tables())}
        fields["longest_transaction"] = round(counts.longest, 3)
        if counts.stopped:
            self.metrics.job_idle("prune", duration, outcome="stopped")
        else:
            self.metrics.job_succeeded("prune", duration)
        log.info("prune done: %s", format_pruned(counts), extra=fields)

    def _failed(self, job: str, started: float, error: str) -> None:
        duration = time.monotonic() - started
        self.metrics.job_failed(job, duration, error)
        log.error("%s failed: %s", job, error, extra={"job": job, "duration": round(duration, 3)})

    def _on_event(self, event: JobEvent) -> None:
        if event.code == EVENT_JOB_MISSED:
            self.metrics.job_missed(event.job_id)
            log.warning(
                "%s run of %s skipped: missed by more than schedule.catch_up (%s)",
                event.job_id,
                event.scheduled_run_time.isoformat(timespec="seconds"),
                self.settings.schedule.catch_up,
                extra={"job": event.job_id},
            )
        elif event.code == EVENT_JOB_MAX_INSTANCES:
            log.warning(
                "%s still running: this run is skipped", event.job_id, extra={"job": event.job_id}
            )
        elif isinstance(event, JobSubmissionEvent) and event.scheduled_run_times:
            due = event.scheduled_run_times[-1]
            with self._settings_lock:
                self._due[event.job_id] = due
            late = (datetime.now(UTC) - due).total_seconds()
            if late > _CATCH_UP_NOTICE:
                log.info(
                    "catching up the %s run missed at %s",
                    event.job_id,
                    due.isoformat(timespec="seconds"),
                    extra={"job": event.job_id, "late_seconds": round(late, 1)},
                )

    def _put_back(self) -> None:
        """Give runs a stop kept from starting their scheduled time back (scheduler stopped).

        APScheduler moved their next run time on when it queued them; without this, a send
        queued behind a fetch at 08:00 and stopped at 08:01 would wait for next week.
        """
        for job_id, due in self._not_run.items():
            try:
                self._put_back_one(job_id, due)
            except Exception:  # shutting down: report, never hang or crash on the way out
                log.exception("could not keep the %s run due at %s", job_id, due.isoformat())

    def _put_back_one(self, job_id: str, due: datetime) -> None:
        job = self.jobstore.lookup_job(job_id)
        if job is None or (job.next_run_time is not None and job.next_run_time <= due):
            return
        job._modify(next_run_time=due)  # the public modify_job needs a running scheduler
        self.jobstore.update_job(job)
        log.info(
            "%s run due at %s did not start: it runs when the daemon is back",
            job_id,
            due.isoformat(timespec="seconds"),
            extra={"job": job_id},
        )

    def _resume_unfinished(self) -> None:
        try:
            numbers = unfinished_issues(self.store)
        except DigestError as exc:
            log.error("cannot look for unfinished deliveries: %s", exc)
            return
        if numbers:
            log.info(
                "delivery of issue %s was interrupted: resuming it now",
                ", ".join(f"#{n}" for n in numbers),
                extra={"issues": numbers},
            )
            self.scheduler.add_job(
                resume_job, id="resume", name="resume", jobstore="memory", misfire_grace_time=None
            )

    def _waiting(self) -> tuple[int, float, float] | None:
        """(issue, seconds waiting for approval, [review] alert_after) or None."""
        try:
            found = waiting_since(self.store)
        except DigestError:
            return None
        if found is None:
            return None
        number, since = found
        waited = (datetime.now(UTC) - since).total_seconds()
        return number, waited, self.settings.review.alert_after_seconds

    def next_runs(self) -> dict[str, datetime | None]:
        return {job.id: job.next_run_time for job in self.scheduler.get_jobs(jobstore="default")}

    def running(self) -> bool:
        return bool(self.scheduler.state == STATE_RUNNING)

    # ------------------------------------------------------------------ main loop

    def serve(self, lease: Lease) -> int:
        """Run until SIGTERM/SIGINT (exit 0) or until the lock is lost (exit 1)."""
        global _DAEMON
        _DAEMON = self
        self.lease = lease
        server: HealthServer | None = None
        code = 0
        try:
            self.scheduler.start(paused=True)
            self.sync_jobs()
            self._resume_unfinished()
            if self.settings.daemon.http:
                health = Health(
                    metrics=self.metrics,
                    scheduler_running=self.running,
                    lock_lost=lease.lost.is_set,
                    unhealthy_after=self.settings.daemon.unhealthy_after,
                    next_runs=self.next_runs,
                    waiting=self._waiting,
                )
                server = HealthServer(self.settings.daemon.http, health)
            self.scheduler.resume()
            self.metrics.up_since.set(time.time())
            log.info(
                "daemon started",
                extra={
                    "config": self.settings.source,
                    "storage": redact_url(self.settings.storage.url),
                    "next": {k: v.isoformat() if v else None for k, v in self.next_runs().items()},
                },
            )
            while not self.stop.wait(0.2):
                if self.reload_requested.is_set():
                    self.reload_requested.clear()
                    self.reload("SIGHUP")
                if lease.lost.is_set():
                    log.error("stopping: the database lock was lost")
                    code = 1
                    self.stop.set()
            log.info("stopping: letting the current job finish its unit of work")
        finally:
            self.stop.set()
            if self.scheduler.running:
                self.scheduler.shutdown(wait=True)
                self._put_back()
            if server is not None:
                server.close()
            _DAEMON = None
        log.info("daemon stopped", extra={"exit": code})
        return code


def _log_signal(name: str) -> None:
    log.info("received %s", name)


def _apply_log_format(settings: Settings) -> None:
    # `--log-format json` on the command line already wins; `[daemon] log_format` can ask too.
    from digest.infra.logs import JSONFormatter, configure

    root = logging.getLogger("digest")
    if settings.daemon.log_format == "json" and not any(
        isinstance(h.formatter, JSONFormatter) for h in root.handlers
    ):
        configure(fmt="json", level=root.level or logging.INFO)


#: A standby waits for the lock as long as it runs (seconds; a stop ends the wait).
_FOREVER = 10.0**9


@contextmanager
def _standby_then_active(
    settings: Settings, store: Store, lease: timedelta, stop: threading.Event
) -> Iterator[Lease]:
    """Wait as a hot standby (seen by `status` and /healthz), then hold the lock as the active
    daemon: taken at once when the active one dies on this host, after its lease otherwise."""
    with ExitStack() as waiting:
        waiting.enter_context(
            exclusive(store, f"{STANDBY_PREFIX}{uuid.uuid4().hex[:12]}", lease=lease)
        )

        def active() -> str:
            info = holder_of(store)
            return info.describe() if info is not None and not info.expired else "nobody"

        if settings.daemon.http:
            health = Health(metrics=Metrics(), scheduler_running=lambda: False, standby_for=active)
            waiting.callback(HealthServer(settings.daemon.http, health).close)
        log.info("standby: waiting to take over from %s", active(), extra={"role": "standby"})
        taking = exclusive(store, lease=lease, wait=_FOREVER, cancel=stop)
        held = taking.__enter__()
    try:
        log.info("standby: took over the schedule", extra={"role": "active"})
        yield held
    finally:
        taking.__exit__(None, None, None)


def _config_now(config_path: Path | None, settings: Settings) -> Settings:
    """A standby may have waited for days: it serves the config as it is when it takes over
    (or, if that file is now invalid, the one it started with)."""
    try:
        return config.load(config_path)
    except ConfigError as exc:
        log.error("config not reloaded at takeover, keeping the one read at start: %s", exc)
        return settings


def run_daemon(config_path: Path | None) -> int:
    """`digest run`: serve until SIGTERM/SIGINT; returns the exit code (LockedError -> exit 2)."""
    settings = config.load(config_path)
    _apply_log_format(settings)
    # Missed runs and job errors are reported by the daemon itself, in its own log format.
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
    store = open_store(settings.storage.url)
    stop, reload = threading.Event(), threading.Event()
    try:
        with stop_on_signals(stop, reload=reload, announce=_log_signal):
            lease = settings.daemon.lock_lease.delta
            wait = settings.daemon.lock_wait.seconds
            try:
                if settings.daemon.standby:
                    taking = _standby_then_active(settings, store, lease, stop)
                else:
                    taking = exclusive(store, lease=lease, wait=wait, cancel=stop)
                with taking as held:
                    if settings.daemon.standby:
                        settings = _config_now(config_path, settings)
                    daemon = Daemon(config_path, settings, store)
                    daemon.stop, daemon.reload_requested = stop, reload
                    return daemon.serve(held)
            except LockedError:
                if stop.is_set():  # asked to stop while waiting for the lock: nothing to undo
                    return 0
                raise
    finally:
        store.close()
