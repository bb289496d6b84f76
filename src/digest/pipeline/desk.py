"""The editor's desk actions on the open draft: drop, add, pin, rewrite a summary, write the
note, send a test, approve, discard; and storing the approved draft as the issue to deliver.

Every drop, add and pin (and, at approval, every entry kept) is an editor's decision.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from email.utils import make_msgid

from sqlalchemy import Connection

from digest.config import Settings
from digest.errors import DeliveryError, UsageError
from digest.models import IssueContent, IssueEntry, RunCounts, StoredItem
from digest.pipeline.draft import DraftView, build_draft, current, require
from digest.pipeline.issue import record_issue, summaries_for
from digest.pipeline.messages import MessageFactory
from digest.pipeline.wiring import make_sender
from digest.send import Job, Result
from digest.send.base import Outcome
from digest.store import Store
from digest.store import drafts as dstore
from digest.store.issues import next_issue_number
from digest.store.items import get_item, load_topic_matches
from digest.store.listing import issued_item_ids
from digest.store.locks import Lease
from digest.store.subscribers import normalize_email
from digest.tokens import secret_from_env

log = logging.getLogger(__name__)

__all__ = [
    "add",
    "approve",
    "discard",
    "drop",
    "pin",
    "record_approved",
    "reviewed_issue",
    "send_test",
    "set_note",
    "set_summary",
]

#: The stand-in reader a test message is personalised for (its links lead nowhere).
STAND_IN_KEY = "test-reader"


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(UTC)


# --------------------------------------------------------------------------- editing


def _entry(view: DraftView, item_id: int) -> dstore.DraftEntryRow:
    for e in view.entries:
        if e.item_id == item_id:
            return e
    raise UsageError(f"item {item_id} is not in the draft of issue #{view.number}")


def _edited(conn: Connection, draft: dstore.DraftRow, now: datetime, **values: object) -> None:
    """Any change withdraws an approval: what was approved is no longer what would go out."""
    if draft.approved:
        log.info("the draft changed after its approval: it needs approving again")
    dstore.set_draft(conn, draft.id, updated=now, approved_by=None, approved_at=None, **values)


def _decided(
    conn: Connection,
    view: DraftView,
    action: str,
    *,
    item_id: int,
    topic_id: str,
    editor: str,
    now: datetime,
    **values: object,
) -> None:
    """An editor's drop, add or pin: the draft is edited (``values`` on its row) and the
    decision recorded for the learned scorer."""
    _edited(conn, view.draft, now, **values)
    dstore.record_decision(
        conn,
        item_id=item_id,
        topic_id=topic_id,
        action=action,
        editor=editor,
        now=now,
        issue_number=view.number,
    )


def drop(
    settings: Settings, store: Store, item_id: int, *, editor: str, now: datetime | None = None
) -> IssueEntry:
    """Take an entry out of the draft (recorded as a "drop" decision)."""
    now = _now(now)
    view = require(settings, store)
    entry = _entry(view, item_id)
    shown = next(e for e in view.entry_list() if e.item_id == item_id)
    with store.begin() as conn:
        dstore.remove_entry(conn, view.draft.id, item_id)
        lead = {"lead_item_id": None} if view.draft.lead_item_id == item_id else {}
        _decided(
            conn,
            view,
            "drop",
            item_id=item_id,
            topic_id=entry.topic_id,
            editor=editor,
            now=now,
            **lead,
        )
    log.info(
        "draft #%d: %s dropped item %d",
        view.number,
        editor,
        item_id,
        extra={"editor": editor, "item": item_id},
    )
    return shown


def add(
    settings: Settings,
    store: Store,
    item_id: int,
    *,
    topic: str,
    editor: str,
    now: datetime | None = None,
) -> StoredItem:
    """Add any stored item to the draft under ``topic`` (recorded as an "add" decision)."""
    now = _now(now)
    if topic not in settings.topics:
        known = ", ".join(settings.topics) or "none configured"
        raise UsageError(f"unknown topic {topic!r} (topics: {known})")
    view = require(settings, store)
    if any(e.item_id == item_id for e in view.entries):
        raise UsageError(f"item {item_id} is already in the draft of issue #{view.number}")
    with store.connect() as conn:
        stored = get_item(conn, item_id)
        if stored is None:
            raise UsageError(f"item {item_id} does not exist (see digest items list)")
        if issued_item_ids(conn, [item_id]):
            raise UsageError(f"item {item_id} already went out in an earlier issue")
        score = next(
            (m.score for m in load_topic_matches(conn, item_id) if m.topic_id == topic), 0.0
        )
    summaries_for(settings, store, [stored], True)
    with store.begin() as conn:
        dstore.add_entry(
            conn,
            view.draft.id,
            dstore.DraftEntryRow(item_id=item_id, topic_id=topic, origin="editor", score=score),
        )
        _decided(conn, view, "add", item_id=item_id, topic_id=topic, editor=editor, now=now)
    log.info(
        "draft #%d: %s added item %d under %s",
        view.number,
        editor,
        item_id,
        topic,
        extra={"editor": editor, "item": item_id, "topic": topic},
    )
    return stored


def pin(
    settings: Settings, store: Store, item_id: int, *, editor: str, now: datetime | None = None
) -> IssueEntry:
    """Make an entry the lead story (recorded as a "pin" decision)."""
    now = _now(now)
    view = require(settings, store)
    entry = _entry(view, item_id)
    with store.begin() as conn:
        _decided(
            conn,
            view,
            "pin",
            item_id=item_id,
            topic_id=entry.topic_id,
            editor=editor,
            now=now,
            lead_item_id=item_id,
        )
    log.info(
        "draft #%d: %s pinned item %d as the lead",
        view.number,
        editor,
        item_id,
        extra={"editor": editor, "item": item_id},
    )
    return next(e for e in view.entry_list() if e.item_id == item_id)


def set_summary(
    settings: Settings,
    store: Store,
    item_id: int,
    text: str,
    *,
    editor: str,
    now: datetime | None = None,
) -> None:
    """Replace an entry's summary with the editor's own text."""
    now = _now(now)
    text = text.strip()
    if not text:
        raise UsageError("the summary is empty")
    view = require(settings, store)
    _entry(view, item_id)
    with store.begin() as conn:
        dstore.set_entry_summary(conn, view.draft.id, item_id, text)
        _edited(conn, view.draft, now)
    log.info(
        "draft #%d: %s rewrote the summary of item %d",
        view.number,
        editor,
        item_id,
        extra={"editor": editor, "item": item_id},
    )


def set_note(
    settings: Settings, store: Store, text: str, *, editor: str, now: datetime | None = None
) -> None:
    """The editor's introduction (Markdown; empty removes it)."""
    now = _now(now)
    view = require(settings, store)
    with store.begin() as conn:
        _edited(conn, view.draft, now, note=text.strip())
    log.info("draft #%d: %s wrote the note", view.number, editor, extra={"editor": editor})


def approve(
    settings: Settings, store: Store, *, editor: str, now: datetime | None = None
) -> DraftView:
    """Approve the draft as it stands: the next send delivers it. Every entry the editor kept
    is recorded as a "keep" decision."""
    now = _now(now)
    review = settings.review
    if review.editors and not review.is_editor(editor):
        raise UsageError(
            f"{editor} may not approve: [review] editors are {', '.join(review.editors)} "
            "(use --as or $DIGEST_EDITOR)"
        )
    view = require(settings, store)
    if not view.entries:
        raise UsageError(f"the draft of issue #{view.number} has no entries left")
    with store.begin() as conn:
        dstore.set_draft(conn, view.draft.id, approved_by=editor, approved_at=now, updated=now)
        for e in view.entries:
            if e.origin == "filter" and e.item_id != view.draft.lead_item_id:
                dstore.record_decision(
                    conn,
                    item_id=e.item_id,
                    topic_id=e.topic_id,
                    action="keep",
                    editor=editor,
                    now=now,
                    issue_number=view.number,
                )
    log.info("draft #%d approved by %s", view.number, editor, extra={"editor": editor})
    return require(settings, store)


def discard(settings: Settings, store: Store, *, editor: str, now: datetime | None = None) -> int:
    """Throw the draft away (its items go back to the pool: the next draft takes them again)."""
    now = _now(now)
    view = require(settings, store)
    with store.begin() as conn:
        dstore.set_draft(conn, view.draft.id, status="discarded", updated=now)
    log.info("draft #%d discarded by %s", view.number, editor, extra={"editor": editor})
    return view.number


# --------------------------------------------------------------------------- test and send


def send_test(
    settings: Settings,
    store: Store,
    addresses: Sequence[str],
    *,
    now: datetime | None = None,
    secret: bytes | None = None,
) -> list[tuple[str, str | None]]:
    """Send the draft, as a subscriber gets it, to ``addresses`` only, subject "[TEST] ...".

    Personalised for a stand-in reader (its unsubscribe link leads nowhere); never a delivery:
    no delivery row, no subscriber touched. Returns (address, error or None) per address.
    """
    now = _now(now)
    if not addresses:
        raise UsageError("give at least one address to send the test to")
    clean = [normalize_email(a) for a in addresses]
    view = require(settings, store)
    if not view.entries:
        raise UsageError(f"the draft of issue #{view.number} has no entries left")
    factory = MessageFactory(
        settings, view.content, secret or secret_from_env(), subject_prefix="[TEST] "
    )
    jobs = []
    for address in dict.fromkeys(clean):
        message_id = make_msgid("test", domain=factory.domain)
        data = factory.build(
            email=address,
            name=None,
            topics=(),
            language=None,
            token_key=STAND_IN_KEY,
            message_id=message_id,
            now=now,
        )
        jobs.append(
            Job(
                delivery_id=0,
                issue_number=view.number,
                envelope_from=factory.envelope_from,
                recipient=address,
                data=data,
                message_id=message_id,
            )
        )
    results: list[Result] = []
    # Outbox mode: test messages go to <outbox>/tests/, never beside an issue's.
    make_sender(settings, outbox_folder="tests").send_all(jobs, results.extend)
    outcome = {r.job.recipient: r for r in results}
    report: list[tuple[str, str | None]] = []
    for job in jobs:
        r = outcome.get(job.recipient)
        error = (
            None
            if r is not None and r.outcome is Outcome.SENT
            else ((r.error if r is not None else None) or "not sent")
        )
        report.append((job.recipient, error))
    log.info(
        "draft #%d: test sent to %d address(es)",
        view.number,
        sum(1 for _, e in report if e is None),
        extra={"issue": view.number},
    )
    return report


def record_approved(
    settings: Settings,
    store: Store,
    view: DraftView,
    *,
    now: datetime | None = None,
    lease: Lease | None = None,
) -> IssueContent:
    """Store the approved draft as the issue to deliver (one transaction: issue in, draft sent),
    as ``issue.record_issue`` stores any issue."""
    now = _now(now)
    with store.connect() as conn:
        number = next_issue_number(conn)
    content = replace(view.content, number=number)
    if not content.sections:
        raise DeliveryError(f"the draft of issue #{number} has no entries")

    def mark_sent(conn: Connection) -> None:
        dstore.set_draft(conn, view.draft.id, status="sent", number=number, updated=now)

    record_issue(settings, store, content, lease, also=mark_sent)
    log.info(
        "built issue from the approved draft",
        extra={"issue": number, "items": content.item_count, "editor": view.draft.approved_by},
    )
    return content


def reviewed_issue(
    settings: Settings,
    store: Store,
    *,
    now: datetime | None = None,
    dry_run: bool = False,
    deadline: bool = False,
    lease: Lease | None = None,
) -> tuple[int | None, RunCounts]:
    """``[review] mode = "required"``: the number of the issue to deliver now (the approved
    draft, just stored as the issue), or None. With no approval the draft is built if need be
    and ``counts.waiting`` names it; at the daemon's send time (``deadline``) with
    ``on_deadline = "send"`` the draft goes out as it stands."""
    view = current(settings, store)
    if view is None:
        if dry_run:
            log.info("dry run: the draft of the next issue would be built; nothing is stored")
            return None, RunCounts()
        view, _ = build_draft(settings, store, now=now)
        if view is None:
            log.info("no new items: no draft to review, nothing sent")
            return None, RunCounts()
    if not view.draft.approved:
        if deadline and settings.review.on_deadline == "send" and view.entries:
            log.warning(
                "issue #%d has no approval at the send time: sending it as drafted "
                "([review] on_deadline = send)",
                view.number,
                extra={"issue": view.number},
            )
        else:
            log.warning(
                "issue #%d is waiting for approval",
                view.number,
                extra={"issue": view.number, "waiting": True},
            )
            return None, RunCounts(waiting=view.number)
    if dry_run:
        return None, RunCounts(issue_number=view.number)
    content = record_approved(settings, store, view, now=now, lease=lease)
    return content.number, RunCounts(issue_number=content.number)
