"""The database schema (SQLAlchemy Core tables), shared by every ``store`` module.

Times are stored as timezone-aware UTC (``DateTime(timezone=True)``); SQLite keeps them as ISO
text, PostgreSQL as ``timestamptz``. Every change here comes with an Alembic revision
(``migrations/versions/``).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

#: ``meta.schema_version``: 1 before Alembic, 2 since (``alembic_version`` holds the revision).
#: Never bumped again; digests from before Alembic refuse a database at 2.
SCHEMA_VERSION = 2

#: The largest value of an ``Integer`` column (32 bits on PostgreSQL): an id or an issue number
#: above it cannot be stored, so a look-up for one finds nothing (never an OverflowError).
MAX_INTEGER = 2**31 - 1

meta = Table(
    "meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

feeds = Table(
    "feeds",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("url", Text, nullable=False, unique=True),
    Column("name", Text),  # configured name
    Column("title", Text),  # title the feed gives itself
    Column("etag", Text),
    Column("last_modified", Text),
    Column("content_hash", String(64)),  # sha256 of the last body parsed: identical -> skip
    Column("last_fetch", DateTime(timezone=True)),
    Column("last_ok", DateTime(timezone=True)),
    Column("last_error", Text),
    Column("last_status", Integer),
    Column("failures", Integer, nullable=False, default=0),
    Column("next_try", DateTime(timezone=True)),  # backoff / Retry-After / TTL
    Column("disabled", Boolean, nullable=False, default=False),  # 410 Gone
    Column("moved_to", Text),  # permanent redirect target, for the operator
    Column("created", DateTime(timezone=True), nullable=False),
)

items = Table(
    "items",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("feed_id", Integer, ForeignKey("feeds.id", ondelete="CASCADE"), nullable=False),
    Column("guid", Text, nullable=False),
    Column("url", Text, nullable=False),
    Column("canonical_url", Text, nullable=False),
    Column("title", Text, nullable=False),
    Column("published", DateTime(timezone=True), nullable=False),
    Column("dated", Boolean, nullable=False, default=True),
    Column("author", Text),
    Column("content_html", Text, nullable=False, default=""),
    Column("summary_html", Text, nullable=False, default=""),
    Column("language", String(16)),
    Column("first_seen", DateTime(timezone=True), nullable=False),
    # Times this item could not be handled (summary, full text, a link no client can request);
    # at ``items.MAX_ITEM_FAILURES`` it is skipped for good, ``last_error`` saying why.
    Column("failures", Integer, nullable=False, default=0, server_default="0"),
    Column("last_error", Text),
    # The article page's text, fetched once for a teaser of a ``full_text`` feed (to decide
    # its topics on the article, then to summarize it); None when never fetched.
    Column("full_text", Text),
    UniqueConstraint("feed_id", "guid", name="uq_items_feed_guid"),
    # One article met twice (two feeds, tracking parameters) is stored once.
    UniqueConstraint("canonical_url", name="uq_items_canonical_url"),
)
Index("ix_items_first_seen", items.c.first_seen)
Index("ix_items_published", items.c.published)

#: What is left of a pruned item: sha256 of its guid (per feed) and of its canonical URL, so a
#: feed still listing it (or another feed linking to it) does not bring it back as new.
item_fingerprints = Table(
    "item_fingerprints",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("feed_id", Integer, ForeignKey("feeds.id", ondelete="CASCADE"), nullable=False),
    Column("guid_hash", String(64), nullable=False),
    Column("url_hash", String(64), nullable=False),
    Column("first_seen", DateTime(timezone=True), nullable=False),
    Column("pruned_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("feed_id", "guid_hash", name="uq_item_fingerprints_feed_guid"),
)
Index("ix_item_fingerprints_url_hash", item_fingerprints.c.url_hash)
Index("ix_item_fingerprints_pruned_at", item_fingerprints.c.pruned_at)

#: Topic decisions made when the item was stored (for status / explain / topics test).
item_topics = Table(
    "item_topics",
    metadata,
    Column("item_id", Integer, ForeignKey("items.id", ondelete="CASCADE"), primary_key=True),
    Column("topic_id", String(64), primary_key=True),
    Column("score", Float, nullable=False),
    Column("kept", Boolean, nullable=False),
    Column("detail", Text),  # JSON: hits, vetoes, unmet groups
)

#: The same link carried by another feed after its item was stored: the story's coverage
#: ("also covered by"), never a second item.
item_sightings = Table(
    "item_sightings",
    metadata,
    Column("item_id", Integer, ForeignKey("items.id", ondelete="CASCADE"), primary_key=True),
    Column("feed_id", Integer, ForeignKey("feeds.id", ondelete="CASCADE"), primary_key=True),
    Column("url", Text, nullable=False),  # the link as that feed gave it
    Column("title", Text, nullable=False),
    Column("first_seen", DateTime(timezone=True), nullable=False),
)

#: One summary per item, computed once, never per recipient.
summaries = Table(
    "summaries",
    metadata,
    Column("item_id", Integer, ForeignKey("items.id", ondelete="CASCADE"), primary_key=True),
    Column("engine", String(64), nullable=False),
    Column("language", String(16), nullable=False),
    Column("text", Text, nullable=False),
    Column("full_text", Text),  # article page text extracted with trafilatura, if fetched
    Column("created", DateTime(timezone=True), nullable=False),
)

#: LLM answers cached per (content hash, model).
llm_cache = Table(
    "llm_cache",
    metadata,
    Column("key", String(128), primary_key=True),
    Column("summary", Text, nullable=False),
    Column("created", DateTime(timezone=True), nullable=False),
)

issues = Table(
    "issues",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("number", Integer, nullable=False, unique=True),
    Column("created", DateTime(timezone=True), nullable=False),
    Column("period_start", DateTime(timezone=True), nullable=False),
    Column("period_end", DateTime(timezone=True), nullable=False),
    Column("title", Text, nullable=False),
    Column("language", String(16), nullable=False),
    Column("content_json", Text, nullable=False),  # IssueContent, to re-render per variant
    Column("subject", Text, nullable=False),
    Column("html", Text, nullable=False),  # the issue as a web page (no personal bits)
    Column("text", Text, nullable=False),
    Column("status", String(16), nullable=False, default="sending"),  # sending | done
    # Set when ``digest prune`` removed its delivery rows: the issue can never be sent again
    # (the rows were what said who already had it).
    Column("deliveries_pruned", DateTime(timezone=True)),
)

issue_items = Table(
    "issue_items",
    metadata,
    Column("issue_id", Integer, ForeignKey("issues.id", ondelete="CASCADE"), primary_key=True),
    Column("item_id", Integer, ForeignKey("items.id", ondelete="CASCADE"), primary_key=True),
    Column("topic_id", String(64), nullable=False),
    Column("position", Integer, nullable=False),
)

subscribers = Table(
    "subscribers",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("email", Text, nullable=False),
    # subscribers.email_key(): local part and domain lower-cased (never casefolded).
    Column("email_key", Text, nullable=False, unique=True),
    Column("name", Text),
    Column("status", String(16), nullable=False, default="active"),
    Column("topics", Text, nullable=False, default=""),  # ";"-separated topic ids, "" = all
    Column("language", String(16)),
    Column("created", DateTime(timezone=True), nullable=False),
    Column("confirmed_at", DateTime(timezone=True)),
    Column("unsubscribed_at", DateTime(timezone=True)),
    Column("confirm_sent_at", DateTime(timezone=True)),  # double opt-in: at most one per hour
    Column("source", String(32)),  # import | signup | cli
    # Random per-subscriber key carried by signed tokens instead of a guessable id.
    Column("token_key", String(32), nullable=False, unique=True),
)

#: Keyed hashes of erased addresses: a re-import cannot silently re-subscribe them.
erased = Table(
    "erased",
    metadata,
    Column("email_hash", String(128), primary_key=True),
    # Which address key the hash was made from: "lower" (subscribers.email_key today) or
    # "casefold" (markers made before issue 10, looked up with the old key).
    Column("key_rule", String(16), nullable=False, default="lower"),
    Column("erased_at", DateTime(timezone=True), nullable=False),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("issue_id", Integer, ForeignKey("issues.id", ondelete="CASCADE"), nullable=False),
    Column(
        "subscriber_id", Integer, ForeignKey("subscribers.id", ondelete="CASCADE"), nullable=False
    ),
    Column("state", String(16), nullable=False, default="pending"),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt", DateTime(timezone=True)),
    Column("last_error", Text),
    Column("message_id", Text, nullable=False),
    Column("updated", DateTime(timezone=True), nullable=False),
    Column("sent_at", DateTime(timezone=True)),
    # The batch a sender holds (fencing token, holder, until when): see store/claims.py.
    Column("claim_token", BigInteger),
    Column("claim_owner", Text),
    Column("claim_expires", DateTime(timezone=True)),
    # The guarantee "never the same issue twice to anyone" starts here.
    UniqueConstraint("issue_id", "subscriber_id", name="uq_deliveries_issue_subscriber"),
)
# (issue, state, id): the sender walks one issue's pending rows in id order on any database.
Index("ix_deliveries_issue_state", deliveries.c.issue_id, deliveries.c.state, deliveries.c.id)
Index("ix_deliveries_claim_token", deliveries.c.claim_token)

#: Bounces, complaints and mailed unsubscribe requests, one row per (report, subscriber).
#: ``kind``: hard | soft | policy | complaint | unsubscribe. Erasing a subscriber erases theirs.
bounces = Table(
    "bounces",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "subscriber_id", Integer, ForeignKey("subscribers.id", ondelete="CASCADE"), nullable=False
    ),
    Column("issue_id", Integer, ForeignKey("issues.id", ondelete="SET NULL")),
    Column("kind", String(16), nullable=False),
    Column("status", String(16)),  # enhanced status code, e.g. 5.1.1
    Column("diagnostic", Text),
    # Message-ID of the report itself: the same report read twice is recorded once.
    Column("report_id", Text, nullable=False),
    Column("received", DateTime(timezone=True), nullable=False),
    UniqueConstraint("report_id", "subscriber_id", name="uq_bounces_report_subscriber"),
)
Index("ix_bounces_subscriber_received", bounces.c.subscriber_id, bounces.c.received)
# Retention walks old reports by age.
Index("ix_bounces_received", bounces.c.received)

#: One daemon per database: a lease row that expires when its holder dies.
locks = Table(
    "locks",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", Text, nullable=False),  # holders.Holder.encode(): host, boot, pid ns, pid…
    Column("host", Text, nullable=False),
    Column("pid", Integer, nullable=False),
    Column("since", DateTime(timezone=True), nullable=False),
    Column("expires", DateTime(timezone=True), nullable=False),
    # Fencing token of this hold (from ``fence``): a stale holder's writes name an older one.
    Column("token", BigInteger, nullable=False, server_default="0"),
    # "run" (a daemon, or a send on SQLite) or "build" (a send building an issue: others wait
    # for it, then join its delivery).
    Column("purpose", String(16), nullable=False, server_default="run"),
)

#: Named counters that only grow: every lease and every claim takes the next value as its token.
fence = Table(
    "fence",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

#: Per-IP sign-up rate limiting for the web front (sliding hour).
signup_attempts = Table(
    "signup_attempts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("ip_hash", String(64), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)
Index("ix_signup_attempts_ip_at", signup_attempts.c.ip_hash, signup_attempts.c.at)

#: The next issue while editors review it (``[review] mode = "required"``): at most one ``open``.
drafts = Table(
    "drafts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("number", Integer, nullable=False),  # the issue number it will go out as
    Column("status", String(16), nullable=False, default="open"),  # open | sent | discarded
    Column("created", DateTime(timezone=True), nullable=False),
    # Items first seen after this are "new since the draft": shown, never added silently.
    Column("built_at", DateTime(timezone=True), nullable=False),
    Column("period_start", DateTime(timezone=True), nullable=False),
    Column("period_end", DateTime(timezone=True), nullable=False),
    Column("note", Text, nullable=False, default=""),  # the editor's introduction (Markdown)
    Column("lead_item_id", Integer),  # the pinned story
    Column("approved_by", Text),
    Column("approved_at", DateTime(timezone=True)),
    Column("notified_at", DateTime(timezone=True)),  # editors mailed the link (daemon)
    Column("reminded_at", DateTime(timezone=True)),  # the one reminder at the deadline
    Column("updated", DateTime(timezone=True), nullable=False),
)
Index("ix_drafts_status", drafts.c.status)

#: A draft's stories, in order; ``summary`` is the editor's replacement, when there is one.
draft_entries = Table(
    "draft_entries",
    metadata,
    Column("draft_id", Integer, ForeignKey("drafts.id", ondelete="CASCADE"), primary_key=True),
    Column("item_id", Integer, ForeignKey("items.id", ondelete="CASCADE"), primary_key=True),
    Column("topic_id", String(64), nullable=False),
    Column("position", Integer, nullable=False),
    Column("origin", String(16), nullable=False, default="filter"),  # filter | editor
    Column("score", Float, nullable=False, default=0.0),
    Column("summary", Text),
    Column("also_ids", Text, nullable=False, default=""),  # ","-joined: the same story elsewhere
)

#: What editors decided about an item for a topic; the relevance work learns from it.
editor_decisions = Table(
    "editor_decisions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("item_id", Integer, ForeignKey("items.id", ondelete="CASCADE"), nullable=False),
    Column("topic_id", String(64), nullable=False),
    Column("action", String(16), nullable=False),  # keep | drop | pin | add
    Column("kept", Boolean, nullable=False),  # keep, pin and add keep; drop drops
    Column("editor", Text, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("issue_number", Integer),
)
Index("ix_editor_decisions_item", editor_decisions.c.item_id)
Index("ix_editor_decisions_topic_at", editor_decisions.c.topic_id, editor_decisions.c.at)

#: One-time sign-in links of the editors' desk (single use) and the sessions they open.
desk_logins = Table(
    "desk_logins",
    metadata,
    Column("nonce", String(64), primary_key=True),
    Column("editor", Text, nullable=False),
    Column("created", DateTime(timezone=True), nullable=False),
    Column("used_at", DateTime(timezone=True)),
)

desk_sessions = Table(
    "desk_sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),  # sha256 of the cookie value
    Column("editor", Text, nullable=False),
    Column("created", DateTime(timezone=True), nullable=False),
    Column("expires", DateTime(timezone=True), nullable=False),
)

__all__ = [
    "MAX_INTEGER",
    "SCHEMA_VERSION",
    "bounces",
    "deliveries",
    "desk_logins",
    "desk_sessions",
    "draft_entries",
    "drafts",
    "editor_decisions",
    "erased",
    "feeds",
    "fence",
    "issue_items",
    "issues",
    "item_fingerprints",
    "item_sightings",
    "item_topics",
    "items",
    "llm_cache",
    "locks",
    "meta",
    "metadata",
    "signup_attempts",
    "subscribers",
    "summaries",
]
