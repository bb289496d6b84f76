"""The next issue as a draft that editors curate before ``send`` delivers it (``[review]``):
building it, the issue it makes, its near misses and the items new since it was built.

The editing actions are in ``desk``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING

from digest.config import Settings
from digest.errors import LockedError, UsageError
from digest.models import (
    AlsoCovered,
    IssueContent,
    IssueEntry,
    IssueSection,
    StoredItem,
    TopicMatch,
)
from digest.pipeline.issue import compose, issue_entry, section_title, summaries_for
from digest.store import Store
from digest.store import drafts as dstore
from digest.store.issues import last_period_end, next_issue_number
from digest.store.items import get_item
from digest.store.listing import list_items, scored_items
from digest.store.locks import exclusive
from digest.store.sightings import load_sightings
from digest.urls import strip_tracking

if TYPE_CHECKING:
    from sqlalchemy import Connection

log = logging.getLogger(__name__)

__all__ = [
    "Candidate",
    "DraftView",
    "build_draft",
    "build_draft_exclusive",
    "current",
    "draft_content",
    "require",
]

#: Near misses listed at most (best first).
NEAR_MISSES = 20


@dataclass(frozen=True, slots=True)
class Candidate:
    """An item the editor might add: a near miss, or an item new since the draft was built."""

    item_id: int
    title: str
    topic_id: str
    score: float
    source: str
    url: str
    #: Kept by the topic (left out by the per-topic limit, or new), rather than below threshold.
    kept: bool = False
    #: Why it is offered: "rules" (score below the threshold), "limit" (kept, over the per-topic
    #: limit), "learned" (the rules dropped it, the model rates it at the floor), "new".
    origin: str = "rules"
    #: The topic's threshold (for "rules"), or its ``learned_floor`` (for "learned").
    threshold: float = 0.0
    floor: float | None = None
    #: The learned model's probability for the topic, when it rated the item at the floor.
    probability: float | None = None


@dataclass(frozen=True)
class DraftView:
    """An open draft as the editor sees it: the issue as it will go out, and what is left out.

    The near misses and the items new since the draft are looked for on first use only: a desk
    action (drop, pin, approve...) never pays for them, the page and ``draft show`` do.
    """

    draft: dstore.DraftRow
    content: IssueContent
    entries: tuple[dstore.DraftEntryRow, ...]
    settings: Settings = field(repr=False, compare=False)
    store: Store = field(repr=False, compare=False)

    @cached_property
    def taken(self) -> frozenset[int]:
        """Items the draft holds, as entries or as another source of one."""
        return frozenset(
            {e.item_id for e in self.entries} | {i for e in self.entries for i in e.also_ids}
        )

    @cached_property
    def near_misses(self) -> tuple[Candidate, ...]:
        return tuple(_near_misses(self.settings, self.store, self.draft, self.taken))

    @cached_property
    def new_since(self) -> tuple[Candidate, ...]:
        return tuple(_new_since(self.settings, self.store, self.draft, self.taken))

    @property
    def number(self) -> int:
        return self.draft.number

    def entry_list(self) -> list[IssueEntry]:
        """The entries in the order the email shows them (the lead first)."""
        return [e for s in self.content.sections for e in s.entries]


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(UTC)


# --------------------------------------------------------------------------- building


def build_draft(
    settings: Settings, store: Store, *, now: datetime | None = None
) -> tuple[DraftView | None, bool]:
    """The open draft, or a new one built from the items kept since the previous issue.

    Returns (view, created); (None, False) when there is no draft and nothing new to make one.
    """
    now = _now(now)
    found = current(settings, store)
    if found is not None:
        return found, False
    composed = compose(settings, store, now=now, keep_summaries=True)
    content = composed.content
    if content is None:
        return None, False
    entries = [
        dstore.DraftEntryRow(
            item_id=e.item_id,
            topic_id=e.topic_id,
            score=e.score,
            also_ids=composed.also_ids.get(e.item_id, ()),
        )
        for section in content.sections
        for e in section.entries
    ]
    with store.begin() as conn:
        if dstore.open_draft(conn) is not None:  # another process was quicker
            created = False
        else:
            dstore.create_draft(
                conn,
                number=next_issue_number(conn),
                now=now,
                period_start=content.period_start,
                period_end=content.period_end,
                entries=entries,
            )
            created = True
    view = current(settings, store)
    if created and view is not None:
        log.info(
            "built the draft of issue #%d",
            view.number,
            extra={"issue": view.number, "items": len(view.entries)},
        )
    return view, created


def build_draft_exclusive(
    settings: Settings, store: Store, *, now: datetime | None = None
) -> tuple[DraftView | None, bool]:
    """``build_draft`` from outside the daemon (`digest draft`, the web desk): building takes the
    database lock like ``send``, so that no fetch stores items behind the draft's period while it
    is composed (they would be in no draft and no issue). LockedError when another digest holds
    it; showing an existing draft needs no lock."""
    found = current(settings, store)
    if found is not None:
        return found, False
    try:
        with exclusive(
            store, lease=settings.daemon.lock_lease.delta, wait=settings.daemon.lock_wait.seconds
        ):
            return build_draft(settings, store, now=now)
    except LockedError as exc:
        raise LockedError(
            f"{exc} (a running daemon builds the draft itself: at [review] draft, or at the "
            "send time)"
        ) from None


def current(settings: Settings, store: Store) -> DraftView | None:
    """The open draft with its content, near misses and items new since it was built."""
    with store.connect() as conn:
        draft = dstore.open_draft(conn)
        if draft is None:
            return None
        entries = tuple(dstore.entries_of(conn, draft.id))
    content = draft_content(settings, store, draft, entries)
    return DraftView(
        draft=draft,
        content=content,
        entries=entries,
        settings=settings,
        store=store,
    )


def require(settings: Settings, store: Store) -> DraftView:
    """The open draft; UsageError "no draft: run digest draft" when there is none."""
    view = current(settings, store)
    if view is None:
        raise UsageError("no draft: run digest draft")
    return view


def draft_content(
    settings: Settings,
    store: Store,
    draft: dstore.DraftRow,
    entries: Sequence[dstore.DraftEntryRow],
    *,
    number: int | None = None,
) -> IssueContent:
    """The issue the draft makes: topic sections in config order, the pinned story first (its
    section first, and first in it), the editor's summaries and note."""
    d = settings.digest
    ids = [e.item_id for e in entries] + [i for e in entries for i in e.also_ids]
    with store.connect() as conn:
        items = {i: found for i in dict.fromkeys(ids) if (found := get_item(conn, i)) is not None}
        sightings = load_sightings(conn, [e.item_id for e in entries])
    # Items the draft takes always have a summary (written when the draft was built or the
    # item added); one missing here (deleted meanwhile) is written without storing it.
    summaries, _ = summaries_for(
        settings, store, [items[e.item_id] for e in entries if e.item_id in items], False
    )
    topics = settings.topic_defs()
    order = [t.id for t in topics]
    lead = draft.lead_item_id
    by_topic: dict[str, list[IssueEntry]] = {}
    for e in entries:
        stored = items.get(e.item_id)
        if stored is None:
            continue
        entry = issue_entry(
            stored,
            topic_id=e.topic_id,
            score=e.score,
            summary=summaries.get(e.item_id),
            also=tuple(
                AlsoCovered(items[i].source, strip_tracking(items[i].item.url))
                for i in e.also_ids
                if i in items
            ),
            sightings=sightings.get(e.item_id, ()),
            editor_summary=e.summary,
        )
        bucket = by_topic.setdefault(e.topic_id, [])
        if e.item_id == lead:
            bucket.insert(0, entry)
        else:
            bucket.append(entry)
    lead_topic = next((e.topic_id for e in entries if e.item_id == lead), None)
    ordered = sorted(
        (t for t in topics if by_topic.get(t.id)),
        key=lambda t: (t.id != lead_topic, order.index(t.id)),
    )
    sections = tuple(
        IssueSection(
            topic_id=t.id,
            title=section_title(t, d.language),
            entries=tuple(by_topic[t.id]),
            titles=t.titles,
        )
        for t in ordered
    )
    return IssueContent(
        number=number if number is not None else draft.number,
        title=d.title,
        language=d.language,
        timezone=d.timezone,
        created=draft.built_at,
        period_start=draft.period_start,
        period_end=draft.period_end,
        sections=sections,
        base_url=d.base_url,
        note=draft.note,
        lead_item_id=lead if lead_topic is not None else None,
    )


def _candidate(
    stored: StoredItem,
    topic: str,
    score: float,
    kept: bool,
    *,
    origin: str,
    threshold: float = 0.0,
    floor: float | None = None,
    probability: float | None = None,
) -> Candidate:
    return Candidate(
        item_id=stored.id,
        title=stored.item.title,
        topic_id=topic,
        score=score,
        source=stored.source,
        url=stored.item.url,
        kept=kept,
        origin=origin,
        threshold=threshold,
        floor=floor,
        probability=probability,
    )


def _near_misses(
    settings: Settings, store: Store, draft: dstore.DraftRow, taken: frozenset[int]
) -> list[Candidate]:
    """Items of the draft's period left out: kept but over the per-topic limit, or scoring
    between ``[review] floor`` x threshold and the threshold; best (score / threshold) first."""
    floor = settings.review.floor
    not_before = draft.built_at - timedelta(days=settings.digest.window_days)
    best: dict[int, tuple[float, Candidate]] = {}
    with store.connect() as conn:
        since = last_period_end(conn)
        for topic in settings.topic_defs():
            threshold = topic.threshold if topic.threshold > 0 else 1.0
            rows = scored_items(
                conn,
                topic=topic.id,
                # A floor of 0 still wants a positive score: unrelated items score 0.
                min_score=max(floor * threshold, 1e-9),
                first_seen_after=since,
                first_seen_until=draft.built_at,
                not_before=not_before,
                limit=NEAR_MISSES + len(taken),
            )
            for stored, score, kept in rows:
                if stored.id in taken:
                    continue
                ratio = score / threshold
                if stored.id not in best or best[stored.id][0] < ratio:
                    cand = _candidate(
                        stored,
                        topic.id,
                        score,
                        kept,
                        origin="limit" if kept else "rules",
                        threshold=topic.threshold,
                    )
                    best[stored.id] = (ratio, cand)
        for cand, prob in _learned_near_misses(settings, conn, since, draft, taken):
            # The model's probability ranks it among the rules' near misses (score/threshold).
            held = best.get(cand.item_id)
            if held is None or held[0] < prob:
                best[cand.item_id] = (prob, cand)
            elif held[1].topic_id == cand.topic_id and held[1].probability is None:
                # The rules' reason ranks first; the model's opinion is shown beside it.
                best[cand.item_id] = (held[0], replace(held[1], probability=prob, floor=cand.floor))
    ranked = sorted(best.values(), key=lambda p: (-p[0], p[1].item_id))
    return [c for _, c in ranked[:NEAR_MISSES]]


#: Items of the period no topic kept that the learned scorer looks at, newest first.
LEARNED_SCAN = 500


def _learned_near_misses(
    settings: Settings,
    conn: Connection,
    since: datetime | None,
    draft: dstore.DraftRow,
    taken: frozenset[int],
) -> list[tuple[Candidate, float]]:
    """Items of the draft's period no topic kept that the learned scorer rates at or above a
    topic's ``learned_floor`` (topics with ``learned`` "suggest" or "keep")."""
    from digest.pipeline.learning import near_misses
    from digest.store.items import load_topic_matches

    if all(t.learned == "off" for t in settings.topics.values()):
        return []
    not_before = draft.built_at - timedelta(days=settings.digest.window_days)
    rows = [
        r
        for r in list_items(
            conn,
            since=not_before,
            kept=False,
            first_seen_after=since,
            exclude=taken,
            not_issued=True,
            limit=LEARNED_SCAN,
        )
        if r.first_seen <= draft.built_at
    ]
    items = [r.stored for r in rows]
    matches = [load_topic_matches(conn, s.id) for s in items]
    by_id = {s.id: (s, ms) for s, ms in zip(items, matches, strict=True)}
    defs = {t.id: t for t in settings.topic_defs()}
    out: list[tuple[Candidate, float]] = []
    for n in near_misses(settings, items, matches):
        stored, ms = by_id[n.item_id]
        tdef = defs[n.topic_id]
        cand = _candidate(
            stored,
            n.topic_id,
            _rules_score(ms, n.topic_id),
            False,
            origin="learned",
            threshold=tdef.threshold,
            floor=tdef.learned_floor,
            probability=n.probability,
        )
        out.append((cand, n.probability))
    return out


def _rules_score(matches: Sequence[TopicMatch], topic_id: str) -> float:
    """The rules' stored score of an item for one topic (0 when it was not scored)."""
    return next((m.score for m in matches if m.topic_id == topic_id), 0.0)


def _new_since(
    settings: Settings, store: Store, draft: dstore.DraftRow, taken: frozenset[int]
) -> list[Candidate]:
    """Items kept by a topic that arrived after the draft was built: shown, never added."""
    order = {t.id for t in settings.topic_defs()}
    with store.connect() as conn:
        rows = list_items(
            conn,
            kept=True,
            first_seen_after=draft.built_at,
            exclude=taken,
            not_issued=True,
            limit=100,
        )
    out = []
    for row in rows:
        topics = [t for t in row.kept_by if t in order]
        if topics:
            score = row.topics[topics[0]][0]
            out.append(_candidate(row.stored, topics[0], score, True, origin="new"))
    return out
