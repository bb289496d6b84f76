"""Items, their topic decisions and their summaries: insert once, read back as ``StoredItem``.

An item is unique per (feed, guid) and per canonical URL, so one article met twice (two feeds,
tracking parameters) is stored once; duplicates are skipped with ``ON CONFLICT DO NOTHING``, and
items pruned long ago by their fingerprints (``item_fingerprints``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Row,
    Select,
    and_,
    delete,
    exists,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.exc import SQLAlchemyError

from digest.models import Item, StoredItem, Summary, TermHit, TopicMatch
from digest.store import schema
from digest.store.db import Store, upsert_insert
from digest.store.text import fit, fit_optional

__all__ = [
    "MAX_ITEM_FAILURES",
    "KeptItem",
    "SQLCache",
    "add_topic_matches",
    "any_kept_items",
    "as_utc",
    "count_items",
    "failed_items",
    "fingerprint",
    "get_item",
    "insert_items",
    "iter_items",
    "kept_items",
    "load_summaries",
    "load_topic_matches",
    "record_item_failure",
    "save_summary",
    "save_topic_matches",
    "to_db",
]


def as_utc(value: datetime) -> datetime:
    """A datetime read from the database as aware UTC (SQLite gives naive UTC back)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def to_db(value: datetime) -> datetime:
    """Aware UTC before writing: SQLite's DATETIME text drops the offset, so convert first."""
    if value.tzinfo is None:
        raise ValueError("naive datetime given to the store; use timezone-aware UTC")
    return value.astimezone(UTC)


# --------------------------------------------------------------------------- items

_SOURCE = func.coalesce(schema.feeds.c.name, schema.feeds.c.title, schema.feeds.c.url)


def _item_select() -> Select[Any]:
    return select(
        schema.items,
        schema.feeds.c.url.label("feed_url"),
        _SOURCE.label("source"),
    ).join(schema.feeds, schema.feeds.c.id == schema.items.c.feed_id)


def _row_to_stored(row: Row[Any]) -> StoredItem:
    m = row._mapping
    item = Item(
        feed_url=m["feed_url"],
        guid=m["guid"],
        url=m["url"],
        canonical_url=m["canonical_url"],
        title=m["title"],
        published=as_utc(m["published"]),
        author=m["author"],
        content_html=m["content_html"] or "",
        summary_html=m["summary_html"] or "",
        language=m["language"],
        dated=bool(m["dated"]),
    )
    return StoredItem(id=m["id"], item=item, source=m["source"])


#: An item that failed this many times (summary, full text, store) is skipped for good.
MAX_ITEM_FAILURES = 3


def _item_row(feed_id: int, item: Item, first_seen: datetime) -> dict[str, Any]:
    """The row of one item, every text cleaned and cut to what its column holds."""
    return {
        "feed_id": feed_id,
        "guid": fit(item.guid, 1000),
        "url": fit(item.url, 8192),
        "canonical_url": fit(item.canonical_url, 8192),
        "title": fit(item.title, 1000),
        "published": to_db(item.published),
        "dated": item.dated,
        "author": fit_optional(item.author, 200),
        "content_html": fit(item.content_html),
        "summary_html": fit(item.summary_html),
        "language": fit_optional(item.language, 16),
        "first_seen": first_seen,
        # An item that cannot go into any issue (a link no client can request) is stored with
        # its reason, so it is counted once and not met as new again on the next fetch.
        "failures": MAX_ITEM_FAILURES if item.problem else 0,
        "last_error": fit_optional(item.problem, 1000),
    }


def fingerprint(text: str) -> str:
    """What a pruned item leaves of its guid or canonical URL: sha256, hex."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _pruned_before(conn: Connection, feed_id: int, rows: Sequence[dict[str, Any]]) -> set[str]:
    """Guids of ``rows`` that are items pruned earlier (same guid in this feed, or same
    canonical URL in any): not new, whatever the feed says."""
    f = schema.item_fingerprints
    by_guid = {fingerprint(r["guid"]): r["guid"] for r in rows}
    by_url = {fingerprint(r["canonical_url"]): r["guid"] for r in rows}
    seen: set[str] = set()
    guid_keys, url_keys = list(by_guid), list(by_url)
    for start in range(0, len(rows), 500):  # stay under SQLite's bound-parameter limit
        for (h,) in conn.execute(
            select(f.c.guid_hash).where(
                f.c.feed_id == feed_id, f.c.guid_hash.in_(guid_keys[start : start + 500])
            )
        ):
            seen.add(by_guid[h])
        for (h,) in conn.execute(
            select(f.c.url_hash).where(f.c.url_hash.in_(url_keys[start : start + 500]))
        ):
            seen.add(by_url[h])
    return seen


def insert_items(
    conn: Connection,
    feed_id: int,
    items: Iterable[Item],
    *,
    now: datetime,
    failed: list[tuple[Item, str]] | None = None,
) -> list[tuple[int, Item]]:
    """Store the items not seen before; returns ``(id, item)`` for the new ones only.

    One multi-row INSERT ... ON CONFLICT DO NOTHING RETURNING per call: the rows that come back
    are exactly the new ones (a guid is unique within its feed, so it maps them back). Inside a
    savepoint: when the batch fails, each item is tried alone in its own, and one the database
    refuses is appended to ``failed`` with the reason instead of failing its feed.
    """
    first_seen = to_db(now)
    by_guid: dict[str, Item] = {}
    rows: list[dict[str, Any]] = []
    for item in items:
        row = _item_row(feed_id, item, first_seen)
        if row["guid"] in by_guid:  # the same guid twice in one document: the first one wins
            continue
        by_guid[row["guid"]] = item
        rows.append(row)
    if rows:
        pruned = _pruned_before(conn, feed_id, rows)
        rows = [row for row in rows if row["guid"] not in pruned]
    if not rows:
        return []
    stmt = (
        upsert_insert(conn)(schema.items)
        .on_conflict_do_nothing()
        .returning(schema.items.c.id, schema.items.c.guid)
    )
    try:
        with conn.begin_nested():
            got = list(conn.execute(stmt, rows))
    except SQLAlchemyError:
        got = []
        for row in rows:
            try:
                with conn.begin_nested():
                    got.extend(conn.execute(stmt, [row]))
            except SQLAlchemyError as exc:
                reason = str(getattr(exc, "orig", None) or exc).splitlines()[0][:300]
                if failed is not None:
                    failed.append((by_guid[row["guid"]], f"not stored: {reason}"))
    new = [(int(r.id), by_guid[r.guid]) for r in got]
    new.sort(key=lambda pair: pair[0])
    return new


def record_item_failure(conn: Connection, item_id: int, reason: str) -> int:
    """Count one failure of an item, with its reason; returns its failures so far."""
    it = schema.items
    conn.execute(
        update(it)
        .where(it.c.id == item_id)
        .values(failures=it.c.failures + 1, last_error=fit(reason, 1000))
    )
    value = conn.execute(select(it.c.failures).where(it.c.id == item_id)).scalar()
    return int(value or 0)


def failed_items(conn: Connection, *, limit: int = 20) -> tuple[int, list[tuple[int, str, str]]]:
    """(how many items are skipped for good, the latest of them as (id, title, reason))."""
    it = schema.items
    cond = it.c.failures >= MAX_ITEM_FAILURES
    total = int(conn.execute(select(func.count()).select_from(it).where(cond)).scalar_one())
    rows = conn.execute(
        select(it.c.id, it.c.title, it.c.last_error)
        .where(cond)
        .order_by(it.c.first_seen.desc(), it.c.id.desc())
        .limit(limit)
    ).all()
    return total, [(int(r.id), str(r.title), str(r.last_error or "")) for r in rows]


def iter_items(
    conn: Connection, since: datetime | None = None, *, batch: int = 500
) -> Iterator[StoredItem]:
    """Every stored item first seen after ``since`` (all when None), oldest first, streamed."""
    stmt = _item_select().order_by(schema.items.c.first_seen, schema.items.c.id)
    if since is not None:
        stmt = stmt.where(schema.items.c.first_seen > to_db(since))
    result = conn.execution_options(yield_per=batch).execute(stmt)
    for row in result:
        yield _row_to_stored(row)


def get_item(conn: Connection, id_or_url: int | str) -> StoredItem | None:
    """One item by id (an int or a string of digits), or by its URL or canonical URL."""
    if isinstance(id_or_url, int) or id_or_url.strip().isdecimal():
        item_id = int(id_or_url)
        if not 0 < item_id <= schema.MAX_INTEGER:
            return None
        cond = schema.items.c.id == item_id
    else:
        url = id_or_url.strip()
        cond = or_(schema.items.c.url == url, schema.items.c.canonical_url == url)
    row = conn.execute(_item_select().where(cond).limit(1)).first()
    return _row_to_stored(row) if row else None


def count_items(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(schema.items)).scalar_one())


# --------------------------------------------------------------------------- topic decisions


# Most decisions are equal (a topic none of whose terms occur): each distinct one is encoded once.
@lru_cache(maxsize=4096)
def _match_detail(match: TopicMatch) -> str:
    d = asdict(match)
    for key in ("topic_id", "score", "kept"):
        d.pop(key)
    if not d.get("rule"):
        d.pop("rule", None)  # most decisions: no rule decided (the stored JSON stays as before)
    return json.dumps(d, ensure_ascii=False)


def _match_from_row(m: Any) -> TopicMatch:
    d = json.loads(m["detail"] or "{}")
    return TopicMatch(
        topic_id=m["topic_id"],
        score=float(m["score"]),
        kept=bool(m["kept"]),
        hits=tuple(TermHit(**h) for h in d.get("hits", ())),
        vetoes=tuple(d.get("vetoes", ())),
        unmet_groups=tuple(tuple(g) for g in d.get("unmet_groups", ())),
        forced=bool(d.get("forced", False)),
        out_of_scope=bool(d.get("out_of_scope", False)),
        learned=d.get("learned"),
        rule=str(d.get("rule", "")),
    )


def save_topic_matches(conn: Connection, item_id: int, matches: Sequence[TopicMatch]) -> None:
    """Record (or replace) the topic decisions made for one item."""
    conn.execute(delete(schema.item_topics).where(schema.item_topics.c.item_id == item_id))
    if matches:
        conn.execute(
            schema.item_topics.insert(),
            [
                {
                    "item_id": item_id,
                    "topic_id": m.topic_id,
                    "score": m.score,
                    "kept": m.kept,
                    "detail": _match_detail(m),
                }
                for m in matches
            ],
        )


def add_topic_matches(
    conn: Connection, decisions: Iterable[tuple[int, Sequence[TopicMatch]]]
) -> None:
    """Record the decisions of new items (no previous decisions to replace), in one statement."""
    rows = [
        {
            "item_id": item_id,
            "topic_id": m.topic_id,
            "score": m.score,
            "kept": m.kept,
            "detail": _match_detail(m),
        }
        for item_id, matches in decisions
        for m in matches
    ]
    if rows:
        conn.execute(schema.item_topics.insert(), rows)


def load_topic_matches(conn: Connection, item_id: int) -> tuple[TopicMatch, ...]:
    rows = conn.execute(
        select(schema.item_topics)
        .where(schema.item_topics.c.item_id == item_id)
        .order_by(schema.item_topics.c.topic_id)
    )
    return tuple(_match_from_row(r._mapping) for r in rows)


# --------------------------------------------------------------------------- summaries


def save_summary(
    conn: Connection,
    item_id: int,
    summary: Summary,
    *,
    now: datetime,
    full_text: str | None = None,
) -> None:
    """Store the one summary of an item (replacing an older one)."""
    conn.execute(delete(schema.summaries).where(schema.summaries.c.item_id == item_id))
    conn.execute(
        schema.summaries.insert().values(
            item_id=item_id,
            engine=fit(summary.engine, 64),
            language=fit(summary.language, 16),
            text=fit(summary.text),
            full_text=fit_optional(full_text),
            created=to_db(now),
        )
    )


def load_summaries(conn: Connection, item_ids: Iterable[int]) -> dict[int, Summary]:
    ids = list(item_ids)
    out: dict[int, Summary] = {}
    for start in range(0, len(ids), 500):  # stay under SQLite's bound-parameter limit
        chunk = ids[start : start + 500]
        rows = conn.execute(select(schema.summaries).where(schema.summaries.c.item_id.in_(chunk)))
        for r in rows:
            m = r._mapping
            out[m["item_id"]] = Summary(
                text=m["text"], language=m["language"], engine=m["engine"], source_text=""
            )
    return out


# --------------------------------------------------------------------------- issue candidates


@dataclass(frozen=True, slots=True)
class KeptItem:
    """A stored item with the topics that kept it (best score first)."""

    stored: StoredItem
    first_seen: datetime
    matches: tuple[TopicMatch, ...]


def _kept_exists() -> Any:
    # Correlated EXISTS: walks the item's own decisions (primary key), not every decision ever.
    it = schema.item_topics
    return exists().where(it.c.item_id == schema.items.c.id, it.c.kept.is_(True))


def kept_items(
    conn: Connection, *, since: datetime | None, until: datetime, not_before: datetime
) -> list[KeptItem]:
    """Items first seen in (since, until], published at or after ``not_before``, kept by a topic.

    Each comes with its kept decisions, best score first.
    """
    cond = _kept_condition(since=since, until=until, not_before=not_before)
    rows = conn.execute(
        _item_select().where(cond).order_by(schema.items.c.published.desc(), schema.items.c.id)
    ).all()
    matches = _kept_matches(conn, [r._mapping["id"] for r in rows])
    return [
        KeptItem(
            _row_to_stored(row),
            as_utc(row._mapping["first_seen"]),
            tuple(sorted(matches.get(row._mapping["id"], ()), key=lambda m: -m.score)),
        )
        for row in rows
    ]


def any_kept_items(
    conn: Connection, *, since: datetime | None, until: datetime, not_before: datetime
) -> bool:
    """Whether ``kept_items`` would return anything: one indexed EXISTS, no rows loaded (the
    cheap "is there an issue to build?" of a cycle where nothing is new)."""
    cond = _kept_condition(since=since, until=until, not_before=not_before)
    return bool(conn.execute(select(exists().where(cond))).scalar())


def _kept_condition(
    *, since: datetime | None, until: datetime, not_before: datetime
) -> ColumnElement[bool]:
    """Items first seen in (since, until], published at or after ``not_before``, not failed for
    good, kept by a topic and in no issue yet."""
    ii = schema.issue_items
    cond = and_(
        schema.items.c.first_seen <= to_db(until),
        schema.items.c.published >= to_db(not_before),
        schema.items.c.failures < MAX_ITEM_FAILURES,
        _kept_exists(),
        # An editor may add an item newer than the draft: it must not come back next issue.
        ~exists().where(ii.c.item_id == schema.items.c.id),
    )
    if since is not None:
        cond = and_(cond, schema.items.c.first_seen > to_db(since))
    return cond


def _kept_matches(conn: Connection, ids: Sequence[int]) -> dict[int, list[TopicMatch]]:
    out: dict[int, list[TopicMatch]] = {}
    it = schema.item_topics
    for start in range(0, len(ids), 500):  # stay under SQLite's bound-parameter limit
        chunk = ids[start : start + 500]
        rows = conn.execute(select(it).where(it.c.item_id.in_(chunk), it.c.kept.is_(True)))
        for r in rows:
            out.setdefault(r._mapping["item_id"], []).append(_match_from_row(r._mapping))
    return out


# --------------------------------------------------------------------------- LLM cache


class SQLCache:
    """The summarizer's cache Protocol (``get``/``put``) on the ``llm_cache`` table."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def get(self, key: str) -> str | None:
        with self.store.connect() as conn:
            row = conn.execute(
                select(schema.llm_cache.c.summary).where(schema.llm_cache.c.key == key)
            ).first()
        return None if row is None else str(row[0])

    def put(self, key: str, value: str) -> None:
        with self.store.begin() as conn:
            ins = upsert_insert(conn)
            stmt = ins(schema.llm_cache).values(
                key=fit(key, 128), summary=fit(value), created=to_db(datetime.now(UTC))
            )
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[schema.llm_cache.c.key],
                    set_={"summary": stmt.excluded.summary, "created": stmt.excluded.created},
                )
            )
