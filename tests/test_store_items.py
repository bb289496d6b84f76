"""Items are stored once per feed+guid and once per canonical URL, and read back intact."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from digest.models import FeedSpec, Item, Summary, TermHit, TopicMatch
from digest.store import Store, open_store
from digest.store.feeds import sync_feeds
from digest.store.items import (
    SQLCache,
    get_item,
    insert_items,
    iter_items,
    kept_items,
    load_summaries,
    load_topic_matches,
    save_summary,
    save_topic_matches,
)

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def item(guid: str, url: str | None = None, **kw: object) -> Item:
    url = url or f"https://news.example/{guid}"
    base: dict[str, object] = {
        "feed_url": "https://news.example/feed",
        "guid": guid,
        "url": url,
        "canonical_url": url,
        "title": f"Title {guid}",
        "published": NOW - timedelta(days=1),
        "content_html": "<p>Body é</p>",
        "language": "fr",
    }
    base.update(kw)
    return Item(**base)  # type: ignore[arg-type]


@pytest.fixture
def store(db_url: str) -> Store:
    return open_store(db_url)


def two_feeds(store: Store) -> tuple[int, int]:
    with store.begin() as conn:
        a, b = sync_feeds(
            conn,
            [FeedSpec("https://a.example/feed", "A"), FeedSpec("https://b.example/feed")],
            now=NOW,
        )
    return a.id, b.id


def test_new_items_get_ids_and_a_second_insert_of_the_same_guid_is_skipped(store: Store) -> None:
    a, _ = two_feeds(store)
    with store.begin() as conn:
        first = insert_items(conn, a, [item("1"), item("2")], now=NOW)
        again = insert_items(conn, a, [item("1"), item("3")], now=NOW)
    assert [i.guid for _, i in first] == ["1", "2"]
    assert [i.guid for _, i in again] == ["3"]


def test_one_article_met_in_two_feeds_is_stored_once(store: Store) -> None:
    a, b = two_feeds(store)
    with store.begin() as conn:
        insert_items(conn, a, [item("x", "https://news.example/story")], now=NOW)
        dup = insert_items(conn, b, [item("other-guid", "https://news.example/story")], now=NOW)
        assert dup == []
        assert len(list(iter_items(conn))) == 1


def test_items_read_back_intact_with_aware_utc_dates_and_source_name(store: Store) -> None:
    a, _ = two_feeds(store)
    with store.begin() as conn:
        [(item_id, original)] = insert_items(conn, a, [item("1")], now=NOW)
    with store.connect() as conn:
        got = get_item(conn, item_id)
        by_url = get_item(conn, "https://news.example/1")
        by_str_id = get_item(conn, str(item_id))
        missing = get_item(conn, "https://nowhere.example/")
    assert got is not None
    assert got.item.published == original.published
    assert got.item.published.tzinfo is not None
    assert got.item.content_html == "<p>Body é</p>"
    assert got.item.feed_url == "https://a.example/feed"
    assert got.source == "A"
    assert by_url == got == by_str_id
    assert missing is None


def test_iter_items_since_returns_only_later_items(store: Store) -> None:
    a, _ = two_feeds(store)
    with store.begin() as conn:
        insert_items(conn, a, [item("old")], now=NOW - timedelta(days=3))
        insert_items(conn, a, [item("new")], now=NOW)
    with store.connect() as conn:
        assert [s.item.guid for s in iter_items(conn, since=NOW - timedelta(days=1))] == ["new"]
        assert [s.item.guid for s in iter_items(conn)] == ["old", "new"]


def test_topic_decisions_and_summaries_round_trip(store: Store) -> None:
    a, _ = two_feeds(store)
    match = TopicMatch(
        "data_protection",
        2.5,
        True,
        hits=(TermHit("rgpd", "title", 2.0, 1, "RGPD"),),
        vetoes=(),
        unmet_groups=(("a", "b"),),
    )
    drop = TopicMatch("sovereign_cloud", 0.0, False)
    with store.begin() as conn:
        [(item_id, _)] = insert_items(conn, a, [item("1")], now=NOW)
        save_topic_matches(conn, item_id, [match, drop])
        save_summary(conn, item_id, Summary("Un résumé.", "fr", "extractive"), now=NOW)
    with store.connect() as conn:
        assert load_topic_matches(conn, item_id) == (match, drop)
        assert load_summaries(conn, [item_id])[item_id].text == "Un résumé."
        kept = kept_items(conn, since=None, until=NOW, not_before=NOW - timedelta(days=7))
    assert [k.stored.id for k in kept] == [item_id]
    assert kept[0].matches == (match,)


def test_kept_items_respect_the_period_and_the_window(store: Store) -> None:
    a, _ = two_feeds(store)
    with store.begin() as conn:
        rows = insert_items(
            conn, a, [item("in"), item("stale", published=NOW - timedelta(30))], now=NOW
        )
        rows += insert_items(conn, a, [item("before")], now=NOW - timedelta(days=2))
        for item_id, _ in rows:
            save_topic_matches(conn, item_id, [TopicMatch("t", 1.0, True)])
    with store.connect() as conn:
        kept = kept_items(
            conn, since=NOW - timedelta(days=1), until=NOW, not_before=NOW - timedelta(days=7)
        )
    assert [k.stored.item.guid for k in kept] == ["in"]


def test_the_llm_cache_keeps_the_latest_answer(store: Store) -> None:
    cache = SQLCache(store)
    assert cache.get("k") is None
    cache.put("k", "one")
    cache.put("k", "two")
    assert cache.get("k") == "two"


def test_one_document_repeating_a_guid_or_an_article_stores_it_once(store: Store) -> None:
    a, _ = two_feeds(store)
    same_article = "https://news.example/same"
    with store.begin() as conn:
        new = insert_items(
            conn,
            a,
            [item("1"), item("1"), item("2", same_article), item("3", same_article)],
            now=NOW,
        )
    assert [i.guid for _, i in new] == ["1", "2"]
    assert [item_id for item_id, _ in new] == sorted(item_id for item_id, _ in new)
