"""Deliver a stored issue to every active subscriber exactly once, resuming after any crash.

Rows: pending -> unknown (committed before the message is handed over) -> sent (after the 250)
| retry | failed | skipped. A restart resends ``unknown`` rows with the same Message-ID.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from digest.config import Settings
from digest.errors import DeliveryError, FencedError, UsageError
from digest.models import DeliveryState, SubscriberStatus
from digest.pipeline import pause
from digest.pipeline.messages import MessageFactory
from digest.pipeline.wiring import RETRY_BASE, make_sender
from digest.render import forget_templates
from digest.send import Job, OutboxSender, Result
from digest.send.base import Outcome
from digest.send.transitions import Event, RetryPolicy, transition
from digest.store import Store, claims
from digest.store import deliveries as dstore
from digest.store.holders import new_holder
from digest.store.issues import load_issue, set_issue_status
from digest.store.retention import deliveries_pruned
from digest.tokens import secret_from_env

log = logging.getLogger(__name__)

#: Rows created per transaction when an issue's delivery starts.
CREATE_BATCH = 1000
#: While other senders hold rows of the issue, how often to look whether they are done.
_LOOK_AGAIN = timedelta(seconds=1)

Progress = Callable[[int, int], None]


@dataclass
class DeliveryReport:
    """Where one issue's delivery stands after a run, and what this run did."""

    issue: int
    #: Rows per state after the run (every DeliveryState, zeros included).
    states: dict[str, int] = field(default_factory=dict)
    sent: int = 0
    failed: int = 0
    #: Transient outcomes (4xx, drops) in this run; each was retried or gave up.
    retried: int = 0
    skipped: int = 0
    #: Rows found ``unknown`` at the start (killed in the ambiguous window) and resent.
    resent_unknown: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    #: Subscribers this run marked ``bounced`` (their last deliveries all failed for good).
    bounced: list[str] = field(default_factory=list)
    stopped: bool = False
    #: This sender lost its claim (paused past its lease); another one finishes the issue.
    fenced: bool = False
    dry_run: bool = False
    #: Dry run: how many messages a real run would hand over now.
    would_send: int = 0

    @property
    def finished(self) -> bool:
        return not any(self.states.get(s.value, 0) for s in dstore.OPEN_STATES)


def _now() -> datetime:
    return datetime.now(UTC)


class _Run:
    """One call of ``deliver_issue``: claims, the job stream, admission and result recording.

    Rows are claimed in small batches under a fencing token; each row is marked in flight by
    the thread about to send it, in the transaction that checks the claim is still ours, and
    its result is written only while the claim is: a sender that lost its claim (paused past
    it, another sender took the rows) writes nothing and stops (``lost``).
    """

    def __init__(
        self,
        settings: Settings,
        store: Store,
        issue_id: int,
        factory: MessageFactory,
        report: DeliveryReport,
        *,
        batch: int,
        retry_base: float,
        progress: Progress | None,
        stop: threading.Event | None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.issue_id = issue_id
        self.factory = factory
        self.report = report
        self.batch = batch
        self.policy = RetryPolicy(max_attempts=settings.smtp.max_attempts, base=retry_base)
        self.lease = settings.daemon.lock_lease.delta
        self.progress = progress
        self.stop = stop
        self.total = 0
        self.done = 0
        self.results_seen = 0
        #: This run as a claim owner (another run of this process is another owner).
        self.owner = new_holder().encode()
        #: The claim of the batch being built (each batch gets a new, larger token).
        self.token = 0
        #: Set when a claim turned out to be gone: another sender has the rows; stop.
        self.lost = threading.Event()
        # Our own writers (builder thread, connection threads) take turns here: contending
        # inside SQLite would cost a busy-handler sleep of a millisecond or more each time,
        # right in the window between a 250 and its record.
        self._write_lock = threading.Lock()

    def _stopping(self) -> bool:
        return self.lost.is_set() or (self.stop is not None and self.stop.is_set())

    def _claim(self) -> list[dstore.DueDelivery]:
        now = _now()
        with self._write_lock, self.store.begin() as conn:
            token = claims.next_token(conn)
            rows = claims.claim(
                conn,
                self.issue_id,
                token=token,
                owner=self.owner,
                until=now + self.lease,
                now=now,
                limit=self.batch,
            )
        self.token = token
        self.report.resent_unknown += sum(r.state is DeliveryState.UNKNOWN for r in rows)
        return rows

    def jobs(self) -> Iterator[Job]:
        """Claimed rows as jobs, batch after batch, until nothing is left to claim."""
        while not self._stopping():
            rows = self._claim()
            if not rows:
                return
            yield from self._jobs_of(rows)

    def _jobs_of(self, rows: list[dstore.DueDelivery]) -> Iterator[Job]:
        f = self.factory
        now = _now()
        settled: list[dict[str, Any]] = []
        failed: list[int] = []
        jobs: list[Job] = []
        for r in rows:
            # Checked now, at send time: an unsubscribed person never gets another message.
            if r.status is not SubscriberStatus.ACTIVE:
                reason = f"subscriber is {r.status.value}"
            elif f.wants_nothing(r.topics):
                reason = f"no section for topics {';'.join(r.topics)}"
            else:
                try:
                    data = f.build(
                        email=r.email,
                        name=r.name,
                        topics=r.topics,
                        language=r.language,
                        token_key=r.token_key,
                        message_id=r.message_id,
                        now=now,
                    )
                except DeliveryError as exc:
                    # This reader's message cannot be built (their address or name): their
                    # row fails with the reason; everyone else's goes on.
                    reason = f"message not built: {exc}"
                    log.warning("%s", reason, extra={"subscriber": r.subscriber_id})
                    step = transition(
                        r.state, Event.PERMANENT, r.attempts, now, policy=self.policy, error=reason
                    )
                    settled.append({"id": r.id, **step.changes()})
                    failed.append(r.id)
                    self.report.failed += 1
                    self.report.failures.append((r.email, reason))
                    self.done += 1
                    continue
                jobs.append(
                    Job(
                        delivery_id=r.id,
                        issue_number=f.content.number,
                        envelope_from=f.envelope_for(r.subscriber_id),
                        recipient=r.email,
                        data=data,
                        message_id=r.message_id,
                        attempts=r.attempts,
                        prior_state=r.state.value,
                        claim=self.token,
                    )
                )
                continue
            step = transition(
                r.state, Event.SKIP, r.attempts, now, policy=self.policy, error=reason
            )
            settled.append({"id": r.id, **step.changes()})
            self.report.skipped += 1
            self.done += 1
        if settled:
            self._write({self.token: settled}, now, failed)
        taken = 0
        try:
            for job in jobs:
                if self._stopping():
                    return
                taken += 1
                yield job
        finally:
            if taken < len(jobs):  # stopping: give back the rows never handed to the sender
                back = [{"id": j.delivery_id} for j in jobs[taken:]]
                self._write({jobs[0].claim: back}, _now())

    def _write(
        self,
        changes: dict[int, list[dict[str, Any]]],
        now: datetime,
        failed: list[int] | None = None,
    ) -> None:
        """Apply row changes, each under the claim token it is keyed by (rows another sender
        holds now are left alone); ``failed`` rows' subscribers are marked bounced when their
        last ``[delivery] bounce_after`` deliveries all failed (not retried issue after issue)."""
        with self._write_lock, self.store.begin() as conn:
            for token, rows in changes.items():
                claims.apply(conn, rows, token=token, now=now)
            if failed:
                bounced = dstore.bounce_failing(
                    conn, failed, after=self.settings.delivery.bounce_after
                )
                for address in bounced:
                    log.warning(
                        "%s marked bounced: the last %d deliveries failed",
                        address,
                        self.settings.delivery.bounce_after,
                    )
                self.report.bounced.extend(bounced)

    def admit(self, job: Job) -> bool:
        """Mark ``job``'s row in flight if our claim still holds (asked just before sending)."""
        now = _now()
        until = now + self.lease
        with self._write_lock, self.store.begin() as conn:
            ok = claims.admit(conn, job.delivery_id, token=job.claim, until=until, now=now)
        if not ok:
            self.lost.set()  # deliver_issue stops and raises FencedError saying why
        return ok

    def record(self, results: list[Result]) -> None:
        """Write a batch of outcomes in one transaction (sent is recorded as soon as known)."""
        now = _now()
        changes: dict[int, list[dict[str, Any]]] = {}
        failed: list[int] = []
        for r in results:
            j = r.job
            prior = DeliveryState(j.prior_state)
            step = transition(
                prior, Event(r.outcome.value), j.attempts, now, policy=self.policy, error=r.error
            )
            # Each job's row is written under the claim it was taken with (results of a batch
            # may arrive after the next batch was claimed).
            changes.setdefault(j.claim, []).append({"id": j.delivery_id, **step.changes()})
            if r.outcome is Outcome.SENT:
                self.report.sent += 1
            elif step.state is DeliveryState.FAILED:
                self.report.failed += 1
                self.report.failures.append((j.recipient, step.last_error or ""))
                failed.append(j.delivery_id)
                if r.outcome is Outcome.TRANSIENT:
                    self.report.retried += 1
            elif step.state is DeliveryState.RETRY:
                self.report.retried += 1
            if step.final:
                self.done += 1
        self.results_seen += len(results)
        self._write(changes, now, failed)
        if self.progress is not None:
            self.progress(self.done, self.total)


def create_pending(store: Store, issue_id: int, factory: MessageFactory) -> int:
    """Give every active subscriber a pending row for this issue (idempotent, batched)."""
    created = 0
    after = 0
    while True:
        with store.begin() as conn:
            missing = dstore.missing_recipients(conn, issue_id, after=after, limit=CREATE_BATCH)
            if not missing:
                return created
            rows = [(sid, factory.message_id(key)) for sid, key in missing]
            created += dstore.insert_pending(conn, issue_id, rows, _now())
        after = missing[-1][0]


def deliver_issue(
    settings: Settings,
    store: Store,
    number: int,
    *,
    dry_run: bool = False,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
    retry_base: float = RETRY_BASE,
) -> DeliveryReport:
    """Deliver issue ``number`` to everyone who has not had it; returns counts per state.

    Waits for due retries until every row is sent, failed or skipped (or ``stop`` is set:
    the message on the wire is finished, the rest stays for the next run). A fatal SMTP error
    (auth, TLS) or an unreachable relay raises after recording; undelivered rows stay open.
    """
    secret = secret_from_env()
    with store.connect() as conn:
        issue = load_issue(conn, number)
        pruned = deliveries_pruned(conn, issue.id)
    if pruned is not None:
        # Its rows said who already had it: sending now would send it to everyone again.
        raise UsageError(
            f"issue #{number}: its delivery records were pruned on {pruned:%Y-%m-%d} "
            "([storage] retention.deliveries); it cannot be sent again"
        )
    factory = MessageFactory(settings, issue.content, secret)
    report = DeliveryReport(issue=number, dry_run=dry_run)
    if dry_run:
        with store.connect() as conn:
            report.states = dstore.counts(conn, issue.id)
            missing = 0
            after = 0
            while batch := dstore.missing_recipients(conn, issue.id, after=after, limit=10000):
                missing += len(batch)
                after = batch[-1][0]
        report.would_send = missing + _open_rows(report.states)
        return report
    sender = make_sender(settings, retry_base=retry_base)
    create_pending(store, issue.id, factory)
    if isinstance(sender, OutboxSender):
        sender.write_page(number, issue.html)
    with store.begin() as conn:
        open_now = dstore.open_count(conn, issue.id)
        _release_dead(conn, number)
    connections = settings.smtp.connections if settings.delivery.mode == "smtp" else 1
    run = _Run(
        settings,
        store,
        issue.id,
        factory,
        report,
        batch=100 if isinstance(sender, OutboxSender) else max(4, 2 * connections),
        retry_base=retry_base,
        progress=progress,
        stop=stop,
    )
    run.total = open_now
    try:
        while True:
            seen = run.results_seen
            sender.send_all(run.jobs(), run.record, stop=stop, admit=run.admit)
            if run.lost.is_set():
                report.fenced = True
                break
            if stop is not None and stop.is_set():
                report.stopped = True
                break
            with store.begin() as conn:
                remaining = dstore.open_count(conn, issue.id)
                _release_dead(conn, number)
                due_at = dstore.next_retry(conn, issue.id)
                held_until = claims.others_hold_until(conn, issue.id, run.owner)
            if remaining == 0:
                break
            if held_until is not None:
                # Another sender holds some rows: they end up sent, or its claim expires and
                # they are ours. Look again soon either way.
                due_at = min(due_at or held_until, held_until, _now() + _LOOK_AGAIN)
            if due_at is None and run.results_seen == seen:
                break  # nothing moved and nothing to wait for: leave the rest to the next run
            wait = max(0.0, (due_at - _now()).total_seconds()) if due_at else 0.0
            if wait and pause(wait, stop):
                report.stopped = True
                break
    finally:
        forget_templates()  # this issue's: the next run renders its own
        with store.begin() as conn:
            claims.release(conn, run.owner)  # rows never handed over go back at once
            report.states = dstore.counts(conn, issue.id)
            if not _open_rows(report.states):
                set_issue_status(conn, number, "done")
    if report.resent_unknown:
        log.warning(
            "issue #%d: %d message(s) were in flight when a sender stopped; resent them with "
            "the same Message-ID",
            number,
            report.resent_unknown,
        )
    if report.fenced:
        raise FencedError(
            f"issue #{number}: this sender lost its claim on its recipients (paused longer "
            f"than the lease, {settings.daemon.lock_lease}); another sender delivers them: "
            f"stopped after {report.sent} message(s)"
        )
    return report


def _release_dead(conn: Connection, number: int) -> None:
    for owner in claims.release_dead(conn):
        log.warning(
            "issue #%d: released the recipients claimed by a sender that is gone (%s)",
            number,
            owner,
        )


def _open_rows(states: dict[str, int]) -> int:
    return sum(states.get(s.value, 0) for s in dstore.OPEN_STATES)


def unfinished_issues(store: Store) -> list[int]:
    """Numbers of the issues whose delivery is not complete (resume these first), oldest first."""
    with store.connect() as conn:
        return dstore.unfinished_issue_numbers(conn)
