"""Issues: build the next one (new kept items -> one story each -> best per topic -> summaries),
store and render it, then deliver it; ``send`` first finishes any unfinished issue.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parseaddr

from sqlalchemy import Connection

from digest.config import Settings
from digest.dedup import StoryCandidate, group_stories
from digest.errors import FencedError, LockedError
from digest.models import (
    AlsoCovered,
    IssueContent,
    IssueEntry,
    IssueSection,
    Item,
    RunCounts,
    StoredItem,
    Summary,
    TopicDef,
)
from digest.pipeline import Progress, StopFlag, merge_counts, pause, stopped
from digest.pipeline.deliver import DeliveryReport, deliver_issue, unfinished_issues
from digest.pipeline.summaries import summarize_items
from digest.render import personalize, render_issue, render_page
from digest.store import Store
from digest.store.issues import last_period_end, next_issue_number, save_issue
from digest.store.items import KeptItem, kept_items, load_summaries
from digest.store.locks import Lease, exclusive, holder_of, still_held
from digest.store.sightings import load_sightings
from digest.summarize.clean import html_to_text
from digest.tokens import secret_from_env
from digest.topics import Candidate, select
from digest.urls import strip_tracking

log = logging.getLogger(__name__)

#: How often a sender waiting for another one's issue build looks again (seconds).
_BUILD_POLL = 0.5

__all__ = ["build_issue", "generic_parts", "send", "send_together"]


def section_title(topic: TopicDef, language: str) -> str:
    """The topic's title in the issue's language (its default title when it has none)."""
    return dict(topic.titles).get(language, topic.title)


def issue_entry(
    stored: StoredItem,
    *,
    topic_id: str,
    score: float,
    summary: Summary | None,
    also: tuple[AlsoCovered, ...] = (),
    sightings: Sequence[tuple[str, str]] = (),
    editor_summary: str | None = None,
) -> IssueEntry:
    """One item as the issue shows it, whether the filter or an editor's draft chose it: its
    summary (an editor's replacement wins), the story's other sources and the feeds that
    carried the same link, its language and reading time."""
    item = stored.item
    return IssueEntry(
        item_id=stored.id,
        url=strip_tracking(item.url),
        title=item.title,
        source=stored.source,
        published=item.published,
        summary=editor_summary if editor_summary is not None else (summary.text if summary else ""),
        topic_id=topic_id,
        score=score,
        summary_engine="editor"
        if editor_summary is not None
        else (summary.engine if summary else "none"),
        also=_with_sightings(stored.source, also, sightings),
        language=(summary.language if summary else None) or item.language,
        reading_minutes=_reading_minutes(summary.source_text if summary else "", item),
    )


def build_issue(
    settings: Settings, store: Store, *, now: datetime | None = None, record: bool
) -> IssueContent | None:
    """The next issue from items kept since the previous one; None when there is nothing new.

    ``record``: store it (numbered, rendered, ``sending``; delivery then writes the outbox page
    and the messages); otherwise nothing is written anywhere (``preview``, ``send --dry-run``).
    """
    return _build(settings, store, now=now, record=record)[0]


def _build(
    settings: Settings,
    store: Store,
    *,
    now: datetime | None,
    record: bool,
    failed: list[tuple[str, str]] | None = None,
    lease: Lease | None = None,
) -> tuple[IssueContent | None, int]:
    """``build_issue``, plus how many summaries had to be written for it."""
    composed = compose(settings, store, now=now, keep_summaries=record, failed=failed)
    if composed.content is not None and record:
        record_issue(settings, store, composed.content, lease)
    return composed.content, composed.summarized


@dataclass(frozen=True, slots=True)
class Composed:
    """The next issue as the filter would send it (None: nothing new), how many summaries were
    written for it, and per entry the ids of the items folded into it as "also covered"."""

    content: IssueContent | None
    summarized: int = 0
    also_ids: dict[int, tuple[int, ...]] = field(default_factory=dict)


def compose(
    settings: Settings,
    store: Store,
    *,
    now: datetime | None,
    keep_summaries: bool,
    failed: list[tuple[str, str]] | None = None,
) -> Composed:
    """The issue the filter makes of the items kept since the previous one; stores nothing but
    (with ``keep_summaries``) the summaries it had to write."""
    now = now or datetime.now(UTC)
    d = settings.digest
    not_before = now - timedelta(days=d.window_days)
    with store.connect() as conn:
        since = last_period_end(conn)
        kept = kept_items(conn, since=since, until=now, not_before=not_before)
        number = next_issue_number(conn)
    if not kept:
        return Composed(None)

    topics = settings.topic_defs()
    order = [t.id for t in topics]
    # A topic removed from the config since the item was stored no longer gets a section.
    kept = [k for k in kept if any(m.topic_id in order for m in k.matches)]
    if not kept:
        return Composed(None)
    stories = _stories_for_issue(kept, order, d.max_items_per_topic, d.window_days)
    leaders = [k for k, _, _ in stories]
    chosen = select(
        [
            Candidate(
                key=k.stored.id,
                published=k.stored.item.published,
                matches=tuple(m for m in k.matches if m.topic_id in order),
            )
            for k in leaders
        ],
        max_per_topic=d.max_items_per_topic,
        one_topic_per_item=d.one_topic_per_item,
        thresholds={t.id: t.threshold for t in topics},
    )
    used = [c.key for cands in chosen.values() for c in cands]
    # Summaries are written here, for the few items an issue takes, not for every kept item at
    # fetch time: a week of thousands of feeds keeps thousands of items, an issue shows a few
    # dozen (and an LLM engine or a full-text fetch costs per item).
    summaries, summarized = _summaries(
        settings, store, [k for k in leaders if k.stored.id in used], keep_summaries, failed
    )
    by_id = {k.stored.id: (k, also) for k, also, _ in stories}
    with store.connect() as conn:
        sightings = load_sightings(conn, used)

    sections: list[IssueSection] = []
    for topic in topics:
        entries: list[IssueEntry] = []
        for cand in chosen.get(topic.id, []):
            k, also = by_id[cand.key]
            summary = summaries.get(cand.key)
            match = next(m for m in k.matches if m.topic_id == topic.id)
            entries.append(
                issue_entry(
                    k.stored,
                    topic_id=topic.id,
                    score=match.score,
                    summary=summary,
                    also=also,
                    sightings=sightings.get(k.stored.id, ()),
                )
            )
        if entries:
            sections.append(
                IssueSection(
                    topic_id=topic.id,
                    title=section_title(topic, d.language),
                    entries=tuple(entries),
                    titles=topic.titles,
                )
            )
    if not sections:
        return Composed(None, summarized)
    content = IssueContent(
        number=number,
        title=d.title,
        language=d.language,
        timezone=d.timezone,
        created=now,
        # After a long pause the issue still only covers the window, and says so.
        period_start=max(since, not_before) if since else not_before,
        period_end=now,
        sections=tuple(sections),
        base_url=d.base_url,
    )
    return Composed(content, summarized, {k.stored.id: ids for k, _, ids in stories})


#: Candidates grouped per issue slot (topic x max_items_per_topic) at first: an issue shows a
#: few dozen items, and grouping a flood of thousands would cost minutes (issue 10, #4).
CANDIDATES_PER_SLOT = 5


def _top_per_topic(kept: Sequence[KeptItem], order: Sequence[str], limit: int) -> list[KeptItem]:
    """The best ``limit`` items of each topic (score, then most recent), each item once."""
    chosen: dict[int, KeptItem] = {}
    for tid in order:
        mine = [
            (m.score, k.stored.item.published.timestamp(), k)
            for k in kept
            for m in k.matches
            if m.topic_id == tid
        ]
        mine.sort(key=lambda t: (-t[0], -t[1], t[2].stored.id))
        for _, _, k in mine[:limit]:
            chosen.setdefault(k.stored.id, k)
    return list(chosen.values())


def _stories_for_issue(
    kept: Sequence[KeptItem], order: Sequence[str], per_topic: int, window_days: int
) -> list[tuple[KeptItem, tuple[AlsoCovered, ...], tuple[int, ...]]]:
    """Stories of the candidates an issue can take: near-linear in the kept items.

    Only the best few per topic are grouped; if grouping folds them into fewer stories than a
    topic's slots while more candidates wait, the pool grows (x4) and is grouped again.
    """
    limit = max(20, CANDIDATES_PER_SLOT * max(1, per_topic) * max(1, len(order)))
    while True:
        pool = _top_per_topic(kept, order, limit)
        stories = _stories(pool, window=timedelta(days=window_days))
        if len(pool) == len(kept):
            return stories
        led = Counter(m.topic_id for k, _, _ in stories for m in k.matches)
        waiting = Counter(m.topic_id for k in kept for m in k.matches)
        if all(led[t] >= per_topic or waiting[t] <= limit for t in order):
            return stories
        limit *= 4


#: Words a minute of an adult reading on screen (the usual figure for "N min read").
READING_SPEED = 230


def _reading_minutes(source_text: str, item: Item) -> int:
    """Minutes to read the whole article: its cleaned full text when the summarizer kept it
    (a summary read back from the store has none), else the feed's content or description;
    0 when the feed gave only a teaser (too short to tell)."""
    text = source_text or html_to_text(item.content_html or item.summary_html)
    n = len(text.split())
    return 0 if n < 120 else max(1, round(n / READING_SPEED))


def _stories(
    kept: Sequence[KeptItem], *, window: timedelta
) -> list[tuple[KeptItem, tuple[AlsoCovered, ...], tuple[int, ...]]]:
    """One entry per story: near-duplicates across feeds fold into the best one's "also"."""
    best_first = sorted(
        kept, key=lambda k: (-k.matches[0].score, -k.stored.item.published.timestamp())
    )
    cands = [
        StoryCandidate(
            key=k.stored.id,
            title=k.stored.item.title,
            text=html_to_text(k.stored.item.summary_html or k.stored.item.content_html)[:1000],
            url=k.stored.item.url,
            source=k.stored.source,
            published=k.stored.item.published,
        )
        for k in best_first
    ]
    by_id = {k.stored.id: k for k in best_first}
    out: list[tuple[KeptItem, tuple[AlsoCovered, ...], tuple[int, ...]]] = []
    for group in group_stories(cands, window=window):
        lead = by_id[group[0]]
        also = tuple(
            AlsoCovered(by_id[i].stored.source, strip_tracking(by_id[i].stored.item.url))
            for i in group[1:]
        )
        out.append((lead, also, tuple(group[1:])))
    return out


def _with_sightings(
    source: str, also: tuple[AlsoCovered, ...], sightings: Sequence[tuple[str, str]]
) -> tuple[AlsoCovered, ...]:
    """The story's other sources: near-duplicates first, then the feeds that carried the same
    link; each source once, never the entry's own."""
    seen = {source.casefold(), *(a.source.casefold() for a in also)}
    more = []
    for name, url in sightings:
        if name.casefold() not in seen:
            seen.add(name.casefold())
            more.append(AlsoCovered(name, strip_tracking(url)))
    return also + tuple(more)


def _summaries(
    settings: Settings,
    store: Store,
    kept: Sequence[KeptItem],
    record: bool,
    failed: list[tuple[str, str]] | None = None,
) -> tuple[dict[int, Summary], int]:
    """Stored summaries of ``kept``, writing (and with ``record`` storing) the missing ones."""
    return summaries_for(settings, store, [k.stored for k in kept], record, failed)


def summaries_for(
    settings: Settings,
    store: Store,
    items: Sequence[StoredItem],
    record: bool,
    failed: list[tuple[str, str]] | None = None,
) -> tuple[dict[int, Summary], int]:
    """Stored summaries of ``items``, writing (and with ``record`` storing) the missing ones."""
    with store.connect() as conn:
        have = load_summaries(conn, [i.id for i in items])
    missing = [i for i in items if i.id not in have]
    made = (
        summarize_items(settings, store, missing, record=record, failed=failed) if missing else {}
    )
    have.update(made)
    return have, len(made)


def generic_parts(settings: Settings, content: IssueContent) -> tuple[str, str, str]:
    """(email HTML, text, subject) of the issue for no one in particular (preview, archive text).

    The personal bits get neutral values: no name, and the archive (or a mailto to the sender)
    where a reader's own unsubscribe link would be.
    """
    rendered = render_issue(
        content,
        subject_format=settings.delivery.subject,
        mark_machine_written=settings.summary.mark_machine_written,
        brand=settings.brand.to_model(),
        templates=settings.render.templates,
    )
    if content.base_url:
        leave = f"{content.base_url}/"
    else:
        sender = parseaddr(settings.delivery.from_)[1] or "digest@localhost"
        leave = f"mailto:{sender}?subject=unsubscribe"
    html, text = personalize(rendered, name=None, unsubscribe_url=leave, preferences_url=None)
    return html, text, rendered.subject


def record_issue(
    settings: Settings,
    store: Store,
    content: IssueContent,
    lease: Lease | None = None,
    *,
    also: Callable[[Connection], None] | None = None,
) -> None:
    """Store a built issue (numbered, its page rendered with the brand and templates) for
    delivery; ``also`` writes more in the same transaction (the draft marked sent)."""
    _, text, subject = generic_parts(settings, content)
    page = render_page(
        content, brand=settings.brand.to_model(), templates=settings.render.templates
    )
    with store.begin() as conn:
        # Fenced: a digest paused while building (its lease taken meanwhile) stores nothing,
        # or two issues would go out.
        if lease is not None and not still_held(conn, lease):
            raise FencedError(
                f"issue #{content.number} not stored: this digest lost the database lock while "
                "building it (another digest holds it now)"
            )
        save_issue(conn, content, subject=subject, html=page, text=text)
        if also is not None:
            also(conn)
    # The delivery writes outbox/<number>/index.html from this stored page (outbox mode).
    log.info(
        "built issue",
        extra={"issue": content.number, "items": content.item_count},
    )


# --------------------------------------------------------------------------- send


def send(
    settings: Settings,
    store: Store,
    *,
    dry_run: bool = False,
    progress: Progress | None = None,
    stop: StopFlag | None = None,
    now: datetime | None = None,
    deadline: bool = False,
    lease: Lease | None = None,
) -> RunCounts:
    """Finish unfinished issues, then build, store and deliver a new one if there are new items.

    ``dry_run``: say what would be sent; nothing is stored, written or sent. With ``[review]
    mode = "required"`` only an approved draft goes out (see ``desk.reviewed_issue``; the
    daemon's send job passes ``deadline``). ``lease``: the database lock this run holds; a new
    issue is stored only while it is still held.
    """
    if not dry_run:
        # A missing secret is found before an issue is built, not after it is stored.
        secret_from_env()
    counts = RunCounts()
    for number in unfinished_issues(store):
        if stopped(stop):
            return counts
        log.info("resuming delivery of an unfinished issue", extra={"issue": number})
        counts = merge_counts(counts, _deliver(settings, store, number, dry_run, progress, stop))
    if stopped(stop):
        return counts
    if settings.review.required:
        # Imported here: desk builds on this module (compose, generic_parts).
        from digest.pipeline.desk import reviewed_issue

        approved, reviewed = reviewed_issue(
            settings, store, now=now, dry_run=dry_run, deadline=deadline, lease=lease
        )
        counts = merge_counts(counts, reviewed)
        if approved is None:
            return counts
        return merge_counts(counts, _deliver(settings, store, approved, False, progress, stop))
    failed: list[tuple[str, str]] = []
    content, summarized = _build(
        settings, store, now=now, record=not dry_run, failed=failed, lease=lease
    )
    counts = merge_counts(
        counts,
        RunCounts(summarized=summarized, items_failed=len(failed), item_failures=tuple(failed)),
    )
    if content is None:
        log.info("no new items: nothing sent")
        return counts
    if dry_run:
        log.info(
            "dry run: issue neither stored nor sent",
            extra={"issue": content.number, "items": content.item_count},
        )
        return merge_counts(counts, RunCounts(issue_number=content.number))
    return merge_counts(counts, _deliver(settings, store, content.number, False, progress, stop))


def send_together(
    settings: Settings,
    store: Store,
    *,
    lease: timedelta,
    progress: Progress | None = None,
    stop: StopFlag | None = None,
    now: datetime | None = None,
) -> RunCounts:
    """``send`` for one of several senders sharing a PostgreSQL database.

    Delivering is shared: each sender joins every unfinished issue (claiming batches of its
    readers). Building is single: the next issue is built under the database lock (purpose
    "build"); a sender finding another one building waits for it, then joins its delivery.
    When a daemon holds the lock, building is the daemon's job: with nothing to join, this
    raises LockedError as a second daemon would.
    """
    secret_from_env()
    counts = RunCounts()
    while not stopped(stop):
        for number in unfinished_issues(store):
            if stopped(stop):
                return counts
            log.info("joining the delivery of issue #%d", number, extra={"issue": number})
            counts = merge_counts(counts, _deliver(settings, store, number, False, progress, stop))
        if stopped(stop):
            break
        try:
            with exclusive(store, lease=lease, purpose="build") as held:
                if unfinished_issues(store):
                    continue  # another sender built one meanwhile: join it
                # Build (or, with [review], take the approved draft) and deliver, as one sender
                # would; the others join as soon as the issue is stored.
                built = send(settings, store, progress=progress, stop=stop, now=now, lease=held)
                return merge_counts(counts, built)
        except LockedError:
            info = holder_of(store)
            if unfinished_issues(store):
                continue
            if info is not None and info.purpose != "build":
                if counts.issue_number is None:
                    raise  # a daemon holds it: building the next issue is its job
                log.info("the next issue is built by %s", info.describe())
                break
            # Another sender is building an issue: wait for it, then join its delivery.
            if pause(_BUILD_POLL, stop):
                break
    return counts


def _deliver(
    settings: Settings,
    store: Store,
    number: int,
    dry_run: bool,
    progress: Progress | None,
    stop: StopFlag | None,
) -> RunCounts:
    def on_progress(done: int, total: int) -> None:
        if progress is not None:
            progress("send", done, total)

    report = deliver_issue(
        settings, store, number, dry_run=dry_run, progress=on_progress, stop=stop
    )
    return delivery_counts(report, number)


def delivery_counts(report: DeliveryReport, number: int) -> RunCounts:
    """A delivery's report as the run's counts (the CLI's line, the daemon's metrics)."""
    return RunCounts(
        sent=report.sent,
        retry=report.retried,
        failed=report.failed,
        bounced=len(report.bounced),
        issue_number=number,
        failures=tuple(report.failures),
    )
