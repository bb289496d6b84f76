"""Frozen dataclasses that flow between the pipeline's stages.

Stages import only this module and ``errors``; the pipeline converts config and database rows
into these values, so no stage ever sees pydantic models or SQLAlchemy rows.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

# --------------------------------------------------------------------------- feeds


@dataclass(frozen=True, slots=True)
class FeedSpec:
    """A feed as the editors configured it."""

    url: str
    name: str | None = None
    #: Only these topic ids may take this feed's items (empty: every topic).
    topics: tuple[str, ...] = ()
    #: Topic ids every item of this feed belongs to (e.g. a regulator's feed).
    always: tuple[str, ...] = ()
    #: Fetch the article page when the feed only carries a teaser.
    full_text: bool = False
    #: Allow private/loopback addresses for this feed and its article pages (intranet feeds).
    allow_private: bool = False
    #: Folders or categories from an OPML import that name no topic (shown, exported).
    labels: tuple[str, ...] = ()
    #: Keep rule: only this feed's items mentioning one of these terms are considered.
    include: tuple[str, ...] = ()
    #: Block rule: this feed's items mentioning one of these terms are dropped.
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class FetchRequest:
    """What the fetcher needs to know about one feed: where, and the validators we hold."""

    url: str
    etag: str | None = None
    last_modified: str | None = None
    #: May connect to private and loopback addresses (an intranet feed); never to metadata.
    allow_private: bool = False


class FetchStatus(enum.StrEnum):
    OK = "ok"
    NOT_MODIFIED = "not_modified"
    FAILED = "failed"
    #: Not fetched: the run was asked to stop first. Nothing is recorded for the feed.
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class FetchResult:
    """Outcome of fetching one feed; failures are values, not exceptions."""

    url: str
    status: FetchStatus
    content: bytes | None = None
    final_url: str | None = None
    http_status: int | None = None
    content_type: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    error: str | None = None
    #: New location when the server answered 301/308 (the operator is told; the feed is moved).
    permanent_redirect: str | None = None
    #: Seconds the server asked us to wait (Retry-After on 429/503), or cache lifetime.
    retry_after: float | None = None
    #: 410 Gone: the feed should be disabled.
    gone: bool = False
    elapsed: float = 0.0


# --------------------------------------------------------------------------- items


@dataclass(frozen=True, slots=True)
class Item:
    """One entry of a feed, parsed and sanitized; HTML fields are safe to render."""

    feed_url: str
    guid: str
    url: str
    canonical_url: str
    title: str
    #: Timezone-aware UTC; the first-seen time when the feed gave no usable date.
    published: datetime
    author: str | None = None
    content_html: str = ""
    summary_html: str = ""
    #: BCP 47-ish language code declared by the feed or entry ("fr", "en-us"), if any.
    language: str | None = None
    #: True when ``published`` came from the feed, False when it is the first-seen time.
    dated: bool = True
    #: Why this item cannot go into an issue (e.g. its link is not a valid URL), if so: it is
    #: stored with this reason, counted and never retried.
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    """The result of parsing one feed document."""

    url: str
    title: str | None
    link: str | None
    language: str | None
    items: tuple[Item, ...]
    #: feedparser's bozo exception, when the document was ill-formed but still usable.
    warning: str | None = None
    #: Seconds the publisher says the feed may be cached (RSS ``<ttl>``), if it says so.
    ttl: float | None = None
    #: Entries left out beyond the newest ``max_items`` (see ``parse_feed``).
    over_cap: int = 0


@dataclass(frozen=True, slots=True)
class StoredItem:
    """An item as read back from the database, with its id and the name of its source."""

    id: int
    item: Item
    source: str


# --------------------------------------------------------------------------- topics


@dataclass(frozen=True, slots=True)
class Term:
    """An include term: a word, a phrase, or ``regex:<pattern>``, with its weight."""

    text: str
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class TopicExample:
    """A regression example an editor pinned in config."""

    title: str
    text: str
    expect: bool


@dataclass(frozen=True, slots=True)
class TopicDef:
    """One topic as configured; compiled by ``topics`` into a matcher."""

    id: str
    title: str
    include: tuple[Term, ...]
    exclude: tuple[str, ...] = ()
    #: Each group must have at least one term present for the item to be kept.
    require: tuple[tuple[str, ...], ...] = ()
    title_weight: float = 2.0
    threshold: float = 1.0
    examples: tuple[TopicExample, ...] = ()
    #: Localized titles by language code, e.g. {"fr": "Cloud souverain"}.
    titles: tuple[tuple[str, str], ...] = ()
    #: The learned scorer: "off", "suggest" (items the rules drop but the model rates at least
    #: ``learned_floor`` are near misses for the editors) or "keep" (such items are kept).
    learned: str = "suggest"
    learned_floor: float = 0.9
    #: Keep outright only items that mention at least one include term (near misses need none).
    learned_needs_term: bool = False


@dataclass(frozen=True, slots=True)
class TermHit:
    """One include term found in an item."""

    term: str
    where: str  # "title" or "text"
    weight: float
    count: int
    matched: str = ""  # the text as it stood in the item


@dataclass(frozen=True, slots=True)
class TopicMatch:
    """The decision for one (item, topic): score, why, and whether it is kept."""

    topic_id: str
    score: float
    kept: bool
    hits: tuple[TermHit, ...] = ()
    vetoes: tuple[str, ...] = ()
    unmet_groups: tuple[tuple[str, ...], ...] = ()
    #: Kept because the feed is marked as always on this topic.
    forced: bool = False
    #: Not considered because the feed is scoped to other topics.
    out_of_scope: bool = False
    #: Kept by the learned scorer (``learned = "keep"``) at this probability; None otherwise.
    learned: float | None = None
    #: The rule that dropped the item before any topic could keep it (a ``[filters] block``
    #: entry, a feed's ``include``/``exclude``, the languages read), said as an editor reads it.
    rule: str = ""


# --------------------------------------------------------------------------- summaries


@dataclass(frozen=True, slots=True)
class Summary:
    """A short text standing for an item in the digest."""

    text: str
    language: str
    engine: str  # "extractive", "llm:<model>", ...
    #: The cleaned full text the summary was drawn from.
    source_text: str = ""


# --------------------------------------------------------------------------- issues


@dataclass(frozen=True, slots=True)
class AlsoCovered:
    """Another source that carried the same story."""

    source: str
    url: str


@dataclass(frozen=True, slots=True)
class IssueEntry:
    """One story in an issue."""

    item_id: int
    url: str
    title: str
    source: str
    published: datetime
    summary: str
    topic_id: str
    score: float = 0.0
    summary_engine: str = "extractive"
    also: tuple[AlsoCovered, ...] = ()
    #: The article's language ("fr", "en-us"), when the feed or the summarizer knows it.
    language: str | None = None
    #: Minutes the whole article takes to read (about 230 words a minute); 0 when unknown.
    reading_minutes: int = 0


@dataclass(frozen=True, slots=True)
class IssueSection:
    """All entries of one topic in an issue."""

    topic_id: str
    title: str
    entries: tuple[IssueEntry, ...]
    #: Localized titles by language code (the topic's ``TopicDef.titles``); render picks one.
    titles: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class IssueContent:
    """Everything needed to render an issue, before any personalization."""

    number: int
    title: str
    language: str
    timezone: str
    created: datetime
    period_start: datetime
    period_end: datetime
    sections: tuple[IssueSection, ...]
    base_url: str | None = None
    #: The editor's introduction (Markdown), shown on top; "" when there is none.
    note: str = ""
    #: The story an editor pinned: first in the first section, with a larger treatment.
    lead_item_id: int | None = None

    @property
    def item_count(self) -> int:
        return sum(len(s.entries) for s in self.sections)


@dataclass(frozen=True, slots=True)
class Brand:
    """The operator's look and identity in the email (``[brand]``); every field optional."""

    name: str | None = None
    logo_url: str | None = None
    logo_alt: str = ""
    logo_width: int = 120
    logo_height: int = 40
    accent: str = "#0b57d0"
    footer: str | None = None
    postal_address: str | None = None


@dataclass(frozen=True, slots=True)
class RenderedIssue:
    """HTML and text parts with personal placeholders still to fill (see ``render``)."""

    subject: str
    html: str
    text: str
    language: str
    topics: tuple[str, ...] = ()


# --------------------------------------------------------------------------- people


class SubscriberStatus(enum.StrEnum):
    PENDING = "pending"  # signed up, not yet confirmed (double opt-in)
    ACTIVE = "active"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"


@dataclass(frozen=True, slots=True)
class Subscriber:
    id: int
    email: str
    name: str | None = None
    status: SubscriberStatus = SubscriberStatus.ACTIVE
    #: Topic ids wanted; empty means every topic.
    topics: tuple[str, ...] = ()
    #: Preferred language of the email's own words; None: the digest's language.
    language: str | None = None


class DeliveryState(enum.StrEnum):
    PENDING = "pending"
    SENT = "sent"
    RETRY = "retry"
    FAILED = "failed"
    #: Killed between the end of DATA and recording the reply: resent with the same Message-ID.
    UNKNOWN = "unknown"
    #: Skipped on purpose (unsubscribed before sending, no section for this subscriber).
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class RunCounts:
    """End-to-end counts of one pipeline run, printed as one line at the end."""

    feeds_ok: int = 0
    feeds_failed: int = 0
    #: Feeds whose server answered 304 Not Modified.
    feeds_not_modified: int = 0
    items_new: int = 0
    kept_per_topic: tuple[tuple[str, int], ...] = ()
    summarized: int = 0
    sent: int = 0
    retry: int = 0
    failed: int = 0
    #: Subscribers marked ``bounced`` (their last ``[delivery] bounce_after`` deliveries failed).
    bounced: int = 0
    issue_number: int | None = None
    failures: tuple[tuple[str, str], ...] = field(default=())
    #: Items that could not be handled this run (bad link, refused by the database, summary
    #: failed), each recorded on its item; and items beyond ``max_items_per_feed``, not stored.
    items_failed: int = 0
    items_over_cap: int = 0
    #: (feed URL or item, reason) of each failed item, for the end-of-run report.
    item_failures: tuple[tuple[str, str], ...] = field(default=())
    #: Feeds whose server answered 200 with the same bytes as last time (not parsed again).
    feeds_unchanged: int = 0
    #: ``[review] mode = "required"``: the issue number whose draft waits for approval.
    waiting: int | None = None
