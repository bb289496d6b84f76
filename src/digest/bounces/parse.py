"""Read one incoming message as a bounce (RFC 3464 DSN or a common non-standard format), a
complaint (RFC 5965 ARF) or a mailed unsubscribe request, and classify each failure.

Pure: bytes in, a ``Report`` out; matching it to a subscriber is the pipeline's job.
"""

from __future__ import annotations

import enum
import hashlib
import logging
import re
from dataclasses import dataclass, replace
from email import message_from_bytes, policy
from email.message import Message
from email.parser import HeaderParser
from email.utils import getaddresses, parseaddr

from flufl.bounce import all_failures

log = logging.getLogger(__name__)
# flufl.bounce logs every detector it runs at INFO and a traceback when one trips on odd input
# (then re-raises, which we catch): neither belongs in an operator's log.
logging.getLogger("flufl.bounce").setLevel(logging.CRITICAL)

#: Hard bounces: the address does not exist or is disabled; the subscriber is bounced at once.
HARD_STATUSES = frozenset({"5.1.1", "5.1.2", "5.1.10", "5.2.1"})
#: Mailbox full is temporary by nature, whatever the class the server gave it.
MAILBOX_FULL = frozenset({"5.2.2", "4.2.2"})

_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_SMTP_CODE = re.compile(r"\b([45])\d\d[ -]")
_MESSAGE_ID = re.compile(r"^message-id:\s*(<[^>\s]+>)", re.IGNORECASE | re.MULTILINE)
_RETURN_PATH = re.compile(r"^return-path:\s*<?([^>\s]+)>?", re.IGNORECASE | re.MULTILINE)
_UNSUBSCRIBE = re.compile(r"^\s*unsubscribe\s+(\S+)", re.IGNORECASE)

# Words of non-standard bounces that carry no enhanced status code, and what they mean.
_HINTS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(
            r"user unknown|unknown user|no such (user|mailbox|recipient)|does not exist|"
            r"doesn't have a .* account|invalid (recipient|mailbox|address)|"
            r"recipient address rejected|mailbox unavailable|address not found|"
            r"no mailbox here|not a valid mailbox",
            re.IGNORECASE,
        ),
        "5.1.1",
    ),
    (re.compile(r"(account|mailbox) (is )?(disabled|inactive|suspended)", re.IGNORECASE), "5.2.1"),
    (
        re.compile(r"mailbox (is )?full|over ?quota|quota exceeded|insufficient", re.IGNORECASE),
        "5.2.2",
    ),
    (
        re.compile(r"spam|blocked|blacklist|block ?list|policy|reputation|rejected for", re.I),
        "5.7.1",
    ),
)

#: Headers where the address a report was sent to shows (the VERP return path, when used).
RECIPIENT_HEADERS = (
    "Delivered-To",
    "X-Original-To",
    "Envelope-To",
    "X-Envelope-To",
    "Original-Recipient",
    "To",
)


class Kind(enum.StrEnum):
    BOUNCE = "bounce"
    COMPLAINT = "complaint"
    UNSUBSCRIBE = "unsubscribe"
    #: Anything else (an auto-reply, a human's answer, a delay warning): nothing to do.
    OTHER = "other"


class Severity(enum.StrEnum):
    HARD = "hard"
    SOFT = "soft"
    POLICY = "policy"
    COMPLAINT = "complaint"
    UNSUBSCRIBE = "unsubscribe"


@dataclass(frozen=True, slots=True)
class Failure:
    """One recipient a bounce is about."""

    recipient: str | None
    status: str | None
    diagnostic: str | None = None

    @property
    def severity(self) -> Severity:
        return classify(self.status)


@dataclass(frozen=True, slots=True)
class Report:
    kind: Kind
    #: The report's own Message-ID (or a digest of it): the same report twice counts once.
    report_id: str
    failures: tuple[Failure, ...] = ()
    #: Message-ID of the message that bounced or was reported, when attached or quoted.
    original_message_id: str | None = None
    #: Addresses the report was sent to (the VERP return path shows here) and the original's
    #: Return-Path, for the caller to read a return-path token from.
    envelope_addresses: tuple[str, ...] = ()
    #: Complaint: who complained (Original-Rcpt-To) when the provider says.
    complainant: str | None = None
    #: Unsubscribe request: the token from the subject or the first line of the body.
    unsubscribe_token: str | None = None
    #: Why this is OTHER, or a short description, for the log line.
    note: str = ""
    feedback_type: str | None = None


def classify(status: str | None) -> Severity:
    """Hard, soft or policy from an enhanced status code (RFC 3463)."""
    if status in HARD_STATUSES:
        return Severity.HARD
    if status is None or status in MAILBOX_FULL or status.startswith("4."):
        return Severity.SOFT
    if status.startswith("5.7."):
        return Severity.POLICY
    # Other permanent failures (5.0.0, 5.3.x, 5.4.x...) are not proof the address is gone:
    # they count as soft, so a few in a row still retire the address.
    return Severity.SOFT


def status_from_text(text: str, permanent: bool | None = None) -> str | None:
    """An enhanced status code found in a diagnostic text, else one inferred from its words."""
    m = _STATUS.search(text)
    if m:
        return m.group(0)
    for pattern, status in _HINTS:
        if pattern.search(text):
            if status in MAILBOX_FULL or status == "5.7.1":
                return status
            return status if permanent is not False else "4.0.0"
    code = _SMTP_CODE.search(text)
    if code:
        return "5.0.0" if code.group(1) == "5" else "4.0.0"
    if permanent is None:
        return None
    return "5.0.0" if permanent else "4.0.0"


def _addr(value: str | None) -> str | None:
    """``rfc822; a@b`` or ``<a@b>`` -> ``a@b``."""
    if not value:
        return None
    value = str(value).split(";", 1)[-1].strip().strip("<>").strip()
    return value or None


def _text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if isinstance(payload, bytes):
        charset = part.get_content_charset() or "utf-8"
        try:
            return payload.decode(charset, "replace")
        except LookupError:
            return payload.decode("utf-8", "replace")
    raw = part.get_payload()
    return raw if isinstance(raw, str) else ""


def _blocks(part: Message) -> list[Message]:
    """The header blocks of a message/delivery-status or message/feedback-report part."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [p for p in payload if isinstance(p, Message)]
    text = payload if isinstance(payload, str) else _text(part)
    blocks = re.split(r"\r?\n\s*\r?\n", text.strip())
    return [HeaderParser().parsestr(b) for b in blocks if b.strip()]


def _original_headers(msg: Message) -> Message | None:
    """The headers of the attached original (message/rfc822 or text/rfc822-headers)."""
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype == "message/rfc822":
            inner = part.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                return inner[0]
        elif ctype == "text/rfc822-headers":
            return HeaderParser().parsestr(_text(part))
    return None


def _all_text(msg: Message) -> str:
    return "\n".join(
        _text(p)
        for p in msg.walk()
        if p.get_content_maintype() == "text" and p.get_content_type() != "text/html"
    )


def _envelope(msg: Message, original: Message | None, body: str) -> tuple[str, ...]:
    found: list[str] = []
    for name in RECIPIENT_HEADERS:
        for _, addr in getaddresses([str(v) for v in msg.get_all(name, [])]):
            if addr:
                found.append(addr)
    if original is not None and original.get("Return-Path"):
        found.append(_addr(str(original["Return-Path"])) or "")
    found.extend(m.group(1) for m in _RETURN_PATH.finditer(body))
    return tuple(dict.fromkeys(a for a in found if a))


def _report_id(msg: Message, data: bytes) -> str:
    mid = str(msg.get("Message-ID", "")).strip()
    if mid:
        return mid[:500]
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _original_id(original: Message | None, body: str) -> str | None:
    if original is not None and original.get("Message-ID"):
        return str(original["Message-ID"]).strip() or None
    m = _MESSAGE_ID.search(body)
    return m.group(1) if m else None


def _dsn(part: Message) -> list[Failure]:
    blocks = _blocks(part)
    failures: list[Failure] = []
    for block in blocks[1:] if len(blocks) > 1 else blocks:
        action = str(block.get("Action", "")).strip().lower()
        if action and action != "failed":
            continue  # delayed, delivered, relayed, expanded: not a failure
        recipient = _addr(block.get("Final-Recipient")) or _addr(block.get("Original-Recipient"))
        if recipient is None and not block.get("Status"):
            continue
        diagnostic = str(block.get("Diagnostic-Code", "")).split(";", 1)[-1].strip() or None
        status_field = str(block.get("Status", "")).strip()
        m = _STATUS.search(status_field)
        status = m.group(0) if m else status_from_text(diagnostic or "", permanent=True)
        # A generic class in Status with a precise code in the diagnostic: keep the precise one.
        if status and status.endswith(".0.0") and diagnostic:
            precise = _STATUS.search(diagnostic)
            if precise and precise.group(1) == status[0]:
                status = precise.group(0)
        failures.append(Failure(recipient, status, " ".join((diagnostic or "").split())[:500]))
    return failures


def _fallback(msg: Message, body: str) -> list[Failure]:
    """Non-standard bounces (qmail, old Exim, Yahoo, Exchange...): flufl.bounce finds who."""
    try:
        temporary, permanent = all_failures(msg)
    except Exception as exc:  # a detector tripping on malformed input: no failure found
        log.debug("bounce detectors failed on this message: %s", exc)
        return []
    failures: list[Failure] = []
    for raw, is_permanent in [(a, True) for a in sorted(permanent)] + [
        (a, False) for a in sorted(temporary)
    ]:
        addr = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        addr = addr.strip().strip("<>")
        if not addr or "@" not in addr:
            continue
        # The diagnostic: the lines right after the address, where these formats put it.
        at = body.lower().find(addr.lower())
        context = body[at : at + 600] if at >= 0 else body[:2000]
        status = status_from_text(context, permanent=is_permanent)
        diagnostic = " ".join(context.split())[:500]
        failures.append(Failure(addr, status, diagnostic))
    return failures


def parse_report(data: bytes, *, from_addresses: tuple[str, ...] = ()) -> Report:
    """Parse one incoming message. ``from_addresses``: our own addresses (a message from one
    of them is never taken for a bounce)."""
    msg = message_from_bytes(data, policy=policy.compat32)
    report_id = _report_id(msg, data)
    original = _original_headers(msg)
    body = _all_text(msg)
    envelope = _envelope(msg, original, body)
    ctype = msg.get_content_type()
    report_type = str(msg.get_param("report-type", "") or "").lower()
    base = Report(
        kind=Kind.OTHER,
        report_id=report_id,
        original_message_id=_original_id(original, body),
        envelope_addresses=envelope,
    )
    if ctype == "multipart/report" and report_type == "feedback-report":
        for part in msg.walk():
            if part.get_content_type() == "message/feedback-report":
                fields = _blocks(part)
                first = fields[0] if fields else Message()
                ftype = str(first.get("Feedback-Type", "abuse")).strip().lower()
                who = _addr(first.get("Original-Rcpt-To"))
                if ftype in ("abuse", "fraud", "virus", "other", "not-spam"):
                    kind = Kind.COMPLAINT if ftype != "not-spam" else Kind.OTHER
                    return replace(
                        base, kind=kind, complainant=who, feedback_type=ftype, note="ARF report"
                    )
                return replace(base, kind=Kind.OTHER, feedback_type=ftype, note=f"feedback {ftype}")
    if ctype == "multipart/report" and report_type == "delivery-status":
        for part in msg.walk():
            if part.get_content_type() in (
                "message/delivery-status",
                "message/global-delivery-status",
            ):
                failures = _dsn(part)
                if failures:
                    return replace(base, kind=Kind.BOUNCE, failures=tuple(failures), note="DSN")
                return replace(base, kind=Kind.OTHER, note="delivery report without a failure")
    subject = str(msg.get("Subject", ""))
    for candidate in (subject, body.strip().splitlines()[0] if body.strip() else ""):
        m = _UNSUBSCRIBE.match(candidate)
        if m:
            return replace(base, kind=Kind.UNSUBSCRIBE, unsubscribe_token=m.group(1), note="mailto")
    sender = parseaddr(str(msg.get("From", "")))[1].lower()  # "Name <a@b>" as well as a@b
    if sender and sender in {a.lower() for a in from_addresses}:
        return replace(base, kind=Kind.OTHER, note="sent by ourselves")
    failures = _fallback(msg, body)
    if failures:
        return replace(base, kind=Kind.BOUNCE, failures=tuple(failures), note="non-standard")
    return replace(base, kind=Kind.OTHER, note="not a bounce")
