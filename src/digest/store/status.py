"""Read-only queries behind `digest status`: per-feed health with item counts, recent issues
with their deliveries by state. Aggregates are computed in SQL, never by loading rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, distinct, func, select

from digest.store import schema
from digest.store.feeds import FeedState, list_feeds
from digest.store.items import as_utc


@dataclass(frozen=True, slots=True)
class FeedReport:
    """A configured feed, its stored fetch state (None: never fetched) and its item counts."""

    url: str
    name: str | None
    state: FeedState | None
    items_total: int = 0
    items_kept: int = 0


@dataclass(frozen=True, slots=True)
class IssueReport:
    """One issue and where its delivery stands."""

    number: int
    created: datetime
    subject: str
    status: str
    items: int
    deliveries: dict[str, int]


def feed_reports(
    conn: Connection, configured: Sequence[tuple[str, str | None]]
) -> list[FeedReport]:
    """One report per configured ``(url, name)``, in config order."""
    urls = [url for url, _ in configured]
    states = {s.url: s for s in list_feeds(conn, urls)}
    ids = [s.id for s in states.values()]
    totals: dict[int, int] = {}
    kept: dict[int, int] = {}
    if ids:
        it = schema.items.c
        totals = dict(
            conn.execute(
                select(it.feed_id, func.count()).where(it.feed_id.in_(ids)).group_by(it.feed_id)
            ).all()
        )
        t = schema.item_topics.c
        kept = dict(
            conn.execute(
                select(it.feed_id, func.count(distinct(it.id)))
                .join(schema.item_topics, t.item_id == it.id)
                .where(it.feed_id.in_(ids), t.kept.is_(True))
                .group_by(it.feed_id)
            ).all()
        )
    out = []
    for url, name in configured:
        state = states.get(url)
        fid = state.id if state else -1
        out.append(FeedReport(url, name, state, totals.get(fid, 0), kept.get(fid, 0)))
    return out


def issue_reports(conn: Connection, *, limit: int = 5) -> list[IssueReport]:
    """The ``limit`` most recent issues, newest first, with deliveries counted by state."""
    i = schema.issues.c
    rows = conn.execute(
        select(i.id, i.number, i.created, i.subject, i.status)
        .order_by(i.number.desc())
        .limit(limit)
    ).all()
    if not rows:
        return []
    ids = [r.id for r in rows]
    d = schema.deliveries.c
    by_state: dict[int, dict[str, int]] = {}
    for issue_id, state, n in conn.execute(
        select(d.issue_id, d.state, func.count())
        .where(d.issue_id.in_(ids))
        .group_by(d.issue_id, d.state)
    ):
        by_state.setdefault(issue_id, {})[state] = n
    ii = schema.issue_items.c
    items: dict[int, int] = dict(
        conn.execute(
            select(ii.issue_id, func.count()).where(ii.issue_id.in_(ids)).group_by(ii.issue_id)
        ).all()
    )
    return [
        IssueReport(
            number=r.number,
            created=as_utc(r.created),
            subject=r.subject,
            status=r.status,
            items=int(items.get(r.id, 0)),
            deliveries=by_state.get(r.id, {}),
        )
        for r in rows
    ]
