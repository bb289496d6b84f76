"""Configured feeds and their fetch state: validators, health, backoff, moves and 410s.

The configured URL stays the key of a feed for good; a permanent redirect is kept in
``moved_to`` (fetched from then on) so the config -> stored feed mapping survives the move.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, select, update

from digest.models import FeedSpec, FetchRequest, FetchResult, FetchStatus
from digest.store import schema
from digest.store.items import as_utc, to_db
from digest.store.text import fit_optional

__all__ = [
    "BACKOFF_BASE",
    "BACKOFF_MAX",
    "FeedState",
    "backoff_delay",
    "get_feed",
    "list_feeds",
    "record_fetch",
    "record_fetches",
    "set_content_hash",
    "sync_feeds",
]

BACKOFF_BASE = timedelta(minutes=5)
BACKOFF_MAX = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class FeedState:
    """One feed's row: what to send on the next conditional GET and how healthy it is."""

    id: int
    url: str
    name: str | None
    title: str | None
    etag: str | None
    last_modified: str | None
    content_hash: str | None
    last_fetch: datetime | None
    last_ok: datetime | None
    last_error: str | None
    last_status: int | None
    failures: int
    next_try: datetime | None
    disabled: bool
    moved_to: str | None

    @property
    def fetch_url(self) -> str:
        """Where to fetch: the permanent-redirect target once there is one."""
        return self.moved_to or self.url

    @property
    def source(self) -> str:
        return self.name or self.title or self.url

    def request(self, *, conditional: bool = True) -> FetchRequest:
        if not conditional:
            return FetchRequest(url=self.fetch_url)
        return FetchRequest(url=self.fetch_url, etag=self.etag, last_modified=self.last_modified)

    def is_due(self, now: datetime, *, force: bool = False) -> bool:
        """Not disabled, and past its backoff / Retry-After / max-age (unless forced)."""
        if self.disabled:
            return False
        return force or self.next_try is None or self.next_try <= now


def _opt(value: datetime | None) -> datetime | None:
    return None if value is None else as_utc(value)


def _state(row: Row[Any]) -> FeedState:
    m = row._mapping
    return FeedState(
        id=m["id"],
        url=m["url"],
        name=m["name"],
        title=m["title"],
        etag=m["etag"],
        last_modified=m["last_modified"],
        content_hash=m["content_hash"],
        last_fetch=_opt(m["last_fetch"]),
        last_ok=_opt(m["last_ok"]),
        last_error=m["last_error"],
        last_status=m["last_status"],
        failures=int(m["failures"] or 0),
        next_try=_opt(m["next_try"]),
        disabled=bool(m["disabled"]),
        moved_to=m["moved_to"],
    )


def sync_feeds(conn: Connection, specs: Sequence[FeedSpec], *, now: datetime) -> list[FeedState]:
    """Insert configured feeds not yet stored, refresh names; returns them in config order."""
    urls = [s.url for s in specs]
    existing = {f.url: f for f in list_feeds(conn, urls)}
    inserted = False
    for spec in specs:
        state = existing.get(spec.url)
        if state is None:
            conn.execute(
                schema.feeds.insert().values(
                    url=spec.url, name=spec.name, failures=0, disabled=False, created=to_db(now)
                )
            )
            inserted = True
        elif state.name != spec.name:
            conn.execute(
                update(schema.feeds).where(schema.feeds.c.id == state.id).values(name=spec.name)
            )
            existing[spec.url] = replace(state, name=spec.name)
    # Read again only when rows were added (their ids): thousands of feeds are read once.
    by_url = {s.url: s for s in list_feeds(conn, urls)} if inserted else existing
    return [by_url[u] for u in urls if u in by_url]


def list_feeds(conn: Connection, urls: Iterable[str] | None = None) -> list[FeedState]:
    """Stored feeds (only those configured at ``urls`` when given), by id."""
    stmt = select(schema.feeds).order_by(schema.feeds.c.id)
    if urls is None:
        return [_state(r) for r in conn.execute(stmt)]
    wanted = set(urls)
    if len(wanted) > 500:
        # Thousands of feeds: one scan of the table beats chunked IN lists (SQLite's bound-
        # parameter limit); rows of feeds no longer configured are skipped before conversion.
        url = schema.feeds.c.url
        return [_state(r) for r in conn.execute(stmt) if r._mapping[url] in wanted]
    return [_state(r) for r in conn.execute(stmt.where(schema.feeds.c.url.in_(list(wanted))))]


def get_feed(conn: Connection, feed_id: int) -> FeedState | None:
    row = conn.execute(select(schema.feeds).where(schema.feeds.c.id == feed_id)).first()
    return _state(row) if row else None


def backoff_delay(failures: int, *, rng: random.Random | None = None) -> timedelta:
    """min(2^failures x 5 min, 24 h), with +-10% jitter so failed feeds do not retry in step."""
    base = BACKOFF_BASE * (2 ** min(failures, 20))
    jitter: float = (rng or random.Random()).uniform(0.9, 1.1)
    delay: timedelta = base * jitter
    return min(delay, BACKOFF_MAX)


def record_fetch(
    conn: Connection,
    feed_id: int,
    result: FetchResult,
    now: datetime,
    *,
    rng: random.Random | None = None,
    parse_error: str | None = None,
    state: FeedState | None = None,
) -> list[str]:
    """Record one fetch outcome on its feed; returns warnings meant for the operator.

    ``parse_error``: the body came but is not a feed. That counts as a failure, and the
    validators are forgotten so the next try downloads the body again instead of a 304.
    ``state``: the feed's row as read before this fetch (saves reading it again).
    """
    state = state if state is not None and state.id == feed_id else get_feed(conn, feed_id)
    if state is None:
        raise KeyError(feed_id)
    values, warnings = _fetch_values(state, result, now, rng=rng, parse_error=parse_error)
    conn.execute(update(schema.feeds).where(schema.feeds.c.id == feed_id).values(**values))
    return warnings


def record_fetches(
    conn: Connection, fetched: Iterable[tuple[FeedState, FetchResult]], now: datetime
) -> list[tuple[str, str]]:
    """``record_fetch`` for many feeds (their rows as read before the fetch). Values a feed
    already holds are not written again, so feeds with the same change (a thousand 304s that
    repeat their validators) share one ``UPDATE ... WHERE id IN (...)``.
    Returns (feed URL, warning) pairs."""
    groups: dict[tuple[tuple[str, Any], ...], list[int]] = {}
    warnings: list[tuple[str, str]] = []
    for state, result in fetched:
        values, said = _fetch_values(state, result, now)
        warnings += [(state.url, w) for w in said]
        held = {
            "etag": state.etag,
            "last_modified": state.last_modified,
            "failures": state.failures,
            "last_error": state.last_error,
        }
        change = tuple(sorted((k, v) for k, v in values.items() if k not in held or held[k] != v))
        groups.setdefault(change, []).append(state.id)
    feeds = schema.feeds
    for change, ids in groups.items():
        for start in range(0, len(ids), 500):  # stay under SQLite's bound-parameter limit
            chunk = ids[start : start + 500]
            conn.execute(update(feeds).where(feeds.c.id.in_(chunk)).values(dict(change)))
    return warnings


def _fetch_values(
    state: FeedState,
    result: FetchResult,
    now: datetime,
    *,
    rng: random.Random | None = None,
    parse_error: str | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """The column values one fetch outcome sets on its feed, and the operator's warnings."""
    warnings: list[str] = []
    values: dict[str, Any] = {"last_fetch": to_db(now), "last_status": result.http_status}
    # Retry-After / max-age, capped at a day: a server's typo must not silence a feed for months.
    wait = min(timedelta(seconds=result.retry_after), BACKOFF_MAX) if result.retry_after else None

    if result.permanent_redirect and result.permanent_redirect != state.fetch_url:
        values["moved_to"] = result.permanent_redirect
        warnings.append(
            f"{state.url}: moved permanently to {result.permanent_redirect}; "
            "now fetching the new address — update the config"
        )

    if result.status is FetchStatus.FAILED or parse_error:
        failures = state.failures + 1
        values["failures"] = failures
        values["last_error"] = parse_error or result.error or "failed"
        if parse_error:
            values.update(etag=None, last_modified=None, content_hash=None)
        delay = backoff_delay(failures, rng=rng)
        # The server's own Retry-After wins when it asks for longer than our backoff.
        if wait is not None and wait > delay:
            delay = wait
        values["next_try"] = to_db(now + delay)
        if result.gone:
            values["disabled"] = True
            warnings.append(f"{state.url}: 410 Gone; feed disabled — remove it from the config")
    else:
        values.update(failures=0, last_error=None, last_ok=to_db(now))
        # Cache-Control max-age / Retry-After on success: no refetch before it is stale.
        values["next_try"] = to_db(now + wait) if wait is not None else None
        if result.status is FetchStatus.OK:
            values["etag"] = result.etag
            values["last_modified"] = result.last_modified
        else:  # 304 may refresh validators; keep ours when it does not repeat them
            values["etag"] = result.etag or state.etag
            values["last_modified"] = result.last_modified or state.last_modified
    # Error texts, validators and the redirect target come from outside: storable text only.
    for key in ("last_error", "etag", "last_modified", "moved_to"):
        if isinstance(values.get(key), str):
            values[key] = fit_optional(values[key], 8192)
    return values, warnings


def set_content_hash(
    conn: Connection,
    feed_id: int,
    content_hash: str,
    *,
    title: str | None = None,
    ttl: float | None = None,
    now: datetime | None = None,
) -> None:
    """Remember the body just parsed, so an identical body next time is not parsed again.

    ``ttl`` (RSS ``<ttl>``, seconds): no refetch before it, unless forced; at most a day, so a
    publisher's typo cannot silence a feed for weeks.
    """
    values: dict[str, Any] = {"content_hash": content_hash}
    title = fit_optional(title, 1000)
    if title:
        values["title"] = title
    if ttl and ttl > 0 and now is not None:
        state = get_feed(conn, feed_id)
        until = now + min(timedelta(seconds=ttl), BACKOFF_MAX)
        if state is not None and (state.next_try is None or state.next_try < until):
            values["next_try"] = to_db(until)
    conn.execute(update(schema.feeds).where(schema.feeds.c.id == feed_id).values(**values))
