"""Act on bounces, complaints and mailed unsubscribe requests: match each to one subscriber (and
issue), record it, and retire the address when the rules say so.

Matching: the VERP return-path token when ``[delivery] return_path`` is set, else the Message-ID
of the attached original, else the failed recipient's address and their latest issue.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Connection

from digest.bounces import IMAPOptions, Kind, Mailbox, Report, Severity, parse_report
from digest.config import Settings
from digest.errors import ConfigError, InvalidToken, StoreError, TokenError
from digest.models import SubscriberStatus
from digest.send import split_from
from digest.store import Store
from digest.store import bounces as bstore
from digest.store import subscribers as subs
from digest.tokens import (
    previous_secret_from_env,
    read_token,
    read_verp_token,
    secret_from_env,
    verp_token,
)

log = logging.getLogger(__name__)


@dataclass
class Handled:
    """What one message led to, for the log line and the exit code."""

    kind: Kind
    note: str
    #: One line per subscriber acted on: "ann@example.org: hard 5.1.1 -> bounced".
    actions: list[str] = field(default_factory=list)
    matched: int = 0

    def line(self) -> str:
        what = "; ".join(self.actions) if self.actions else "matches no subscriber"
        return f"{self.kind.value} ({self.note}): {what}"


@dataclass
class PollReport:
    processed: int = 0
    matched: int = 0
    bounced: int = 0
    unsubscribed: int = 0
    left: int = 0
    lines: list[str] = field(default_factory=list)


def verp_pattern(return_path: str) -> re.Pattern[str]:
    """``bounces+{token}@example.org`` -> a pattern capturing the token, case-insensitive."""
    before, after = return_path.split("{token}", 1)
    return re.compile(re.escape(before) + r"([A-Za-z0-9-]+)" + re.escape(after), re.IGNORECASE)


def return_path_for(settings: Settings, secret: bytes, issue: int, subscriber_id: int) -> str:
    """The envelope sender of one message: the VERP address, or the From address."""
    rp = settings.delivery.return_path
    if rp is None:
        return split_from(settings.delivery.from_)[1]
    return rp.replace("{token}", verp_token(secret, issue, subscriber_id))


def _our_addresses(settings: Settings) -> tuple[str, ...]:
    return (split_from(settings.delivery.from_)[1],)


def _by_token(
    conn: Connection,
    settings: Settings,
    secret: bytes,
    addresses: tuple[str, ...],
    previous: bytes | None,
) -> tuple[int | None, int] | None:
    rp = settings.delivery.return_path
    if rp is None:
        return None
    pattern = verp_pattern(rp)
    for addr in addresses:
        m = pattern.fullmatch(addr)
        if not m:
            continue
        try:
            number, subscriber_id = read_verp_token(secret, m.group(1), previous=previous)
        except InvalidToken as exc:
            log.warning("bounce to %s: %s", addr, exc)
            continue
        found = bstore.by_issue_number(conn, number, subscriber_id)
        if found is not None:
            return found
        if subs.get_by_id(conn, subscriber_id) is not None:
            return None, subscriber_id
    return None


def _match(
    conn: Connection,
    settings: Settings,
    secret: bytes,
    report: Report,
    recipient: str | None,
    extra: tuple[str, ...],
    previous: bytes | None = None,
) -> tuple[int | None, int] | None:
    """(issue id or None, subscriber id) this report is about, or None."""
    found = _by_token(conn, settings, secret, extra + report.envelope_addresses, previous)
    if found is not None:
        return found
    if report.original_message_id:
        by_id = bstore.by_message_id(conn, report.original_message_id)
        if by_id is not None:
            return by_id
    for address in (recipient, report.complainant):
        if address:
            rec = subs.get_by_email(conn, address)
            if rec is not None:
                return bstore.latest_delivery(conn, rec.id), rec.id
    return None


def _apply(
    conn: Connection,
    settings: Settings,
    *,
    subscriber_id: int,
    issue_id: int | None,
    severity: Severity,
    status: str | None,
    diagnostic: str | None,
    report_id: str,
    now: datetime,
) -> str:
    rec = subs.get_by_id(conn, subscriber_id)
    if rec is None:
        return ""
    new = bstore.record(
        conn,
        subscriber_id=subscriber_id,
        issue_id=issue_id,
        kind=severity.value,
        status=status,
        diagnostic=diagnostic,
        report_id=report_id,
        now=now,
    )
    head = f"{rec.email}: {severity.value}" + (f" {status}" if status else "")
    if not new:
        return f"{head} (already recorded)"
    if severity in (Severity.COMPLAINT, Severity.UNSUBSCRIBE):
        if rec.status is SubscriberStatus.ACTIVE:
            subs.unsubscribe(conn, subscriber_id, now)
            return f"{head} -> unsubscribed"
        return f"{head} (already {rec.status.value})"
    if rec.status is not SubscriberStatus.ACTIVE:
        return f"{head} (already {rec.status.value})"
    if severity is Severity.HARD:
        subs.set_status(conn, subscriber_id, SubscriberStatus.BOUNCED, now)
        return f"{head} -> bounced"
    if severity is Severity.SOFT:
        b = settings.bounces
        n = bstore.soft_count(conn, subscriber_id, now - b.soft_window.delta)
        if n >= b.soft_limit:
            subs.set_status(conn, subscriber_id, SubscriberStatus.BOUNCED, now)
            return f"{head} -> bounced ({n} soft bounces within {b.soft_window.text})"
        return f"{head} ({n} of {b.soft_limit} soft bounces within {b.soft_window.text})"
    return f"{head} (policy refusal: counted, address kept)"


def handle_message(
    settings: Settings,
    store: Store,
    data: bytes,
    *,
    recipient: str | None = None,
    now: datetime | None = None,
) -> Handled:
    """Parse and act on one incoming message. StoreError propagates (the caller retries)."""
    now = now or datetime.now(UTC)
    secret = secret_from_env()
    # Links and return paths in issues sent before a secret rotation stay ours.
    previous = previous_secret_from_env()
    report = parse_report(data, from_addresses=_our_addresses(settings))
    handled = Handled(report.kind, report.note)
    extra = (recipient,) if recipient else ()
    if report.kind is Kind.OTHER:
        return handled
    with store.begin() as conn:
        if report.kind is Kind.UNSUBSCRIBE:
            token = report.unsubscribe_token or ""
            try:
                key = read_token(secret, token, "unsubscribe", now, previous=previous)
            except TokenError as exc:
                handled.note = f"unsubscribe request: {exc}"
                return handled
            rec = subs.get_by_token_key(conn, key)
            if rec is not None:
                handled.matched = 1
                handled.actions.append(
                    _apply(
                        conn,
                        settings,
                        subscriber_id=rec.id,
                        issue_id=bstore.latest_delivery(conn, rec.id),
                        severity=Severity.UNSUBSCRIBE,
                        status=None,
                        diagnostic="List-Unsubscribe mailto",
                        report_id=report.report_id,
                        now=now,
                    )
                )
            return handled
        if report.kind is Kind.COMPLAINT:
            found = _match(conn, settings, secret, report, None, extra, previous)
            if found is not None:
                handled.matched = 1
                handled.actions.append(
                    _apply(
                        conn,
                        settings,
                        subscriber_id=found[1],
                        issue_id=found[0],
                        severity=Severity.COMPLAINT,
                        status=None,
                        diagnostic=f"feedback-type {report.feedback_type or 'abuse'}",
                        report_id=report.report_id,
                        now=now,
                    )
                )
            return handled
        for failure in report.failures:
            # One report may name several recipients: the token/Message-ID match applies only
            # when it names one, else each failed address is matched by itself.
            if len(report.failures) == 1:
                found = _match(conn, settings, secret, report, failure.recipient, extra, previous)
            else:
                one = Report(kind=report.kind, report_id=report.report_id)
                found = _match(conn, settings, secret, one, failure.recipient, (), previous)
            if found is None:
                continue
            handled.matched += 1
            action = _apply(
                conn,
                settings,
                subscriber_id=found[1],
                issue_id=found[0],
                severity=failure.severity,
                status=failure.status,
                diagnostic=failure.diagnostic,
                report_id=report.report_id,
                now=now,
            )
            if action:
                handled.actions.append(action)
    return handled


def imap_options(settings: Settings) -> IMAPOptions:
    b = settings.bounces
    if not b.host or not b.username:
        raise ConfigError("[bounces] host and username are not set: no mailbox to poll")
    return IMAPOptions(
        host=b.host,
        port=b.port,
        security=b.security,
        username=b.username,
        password=b.password(),
        folder=b.folder,
        after=b.after,
        processed_folder=b.processed_folder,
        timeout=b.timeout,
        ca_file=b.ca_file,
    )


def poll_mailbox(settings: Settings, store: Store, *, now: datetime | None = None) -> PollReport:
    """Process every message waiting in the ``[bounces]`` mailbox; each one is moved or deleted
    once handled. A store failure leaves the message (and the rest) for the next poll."""
    report = PollReport()
    with Mailbox(imap_options(settings)) as box:
        for uid, data in box.messages(limit=settings.bounces.batch):
            try:
                handled = handle_message(settings, store, data, now=now)
            except StoreError as exc:
                report.left += 1
                log.error("bounce mailbox: store unavailable, message left for later: %s", exc)
                break
            box.done(uid)
            report.processed += 1
            report.matched += handled.matched
            report.bounced += sum("-> bounced" in a for a in handled.actions)
            report.unsubscribed += sum(a.endswith("-> unsubscribed") for a in handled.actions)
            report.lines.append(handled.line())
            log.info("bounce mailbox: %s", handled.line())
    return report
