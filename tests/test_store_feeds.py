"""Feed health: backoff for failing feeds, 410 disables, 301/308 moves, max-age and Retry-After."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from digest.models import FeedSpec, FetchResult, FetchStatus
from digest.store import Store, open_store
from digest.store.feeds import (
    BACKOFF_MAX,
    backoff_delay,
    get_feed,
    record_fetch,
    set_content_hash,
    sync_feeds,
)

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
URL = "https://cnil.example/feed"


@pytest.fixture
def store(db_url: str) -> Store:
    return open_store(db_url)


def feed_id(store: Store) -> int:
    with store.begin() as conn:
        [state] = sync_feeds(conn, [FeedSpec(URL, "CNIL")], now=NOW)
    return state.id


def failed(**kw: object) -> FetchResult:
    return FetchResult(URL, FetchStatus.FAILED, error="HTTP 500", http_status=500, **kw)  # type: ignore[arg-type]


def test_configured_feeds_are_stored_once_and_renamed_in_place(store: Store) -> None:
    with store.begin() as conn:
        sync_feeds(conn, [FeedSpec(URL, "CNIL")], now=NOW)
        [again] = sync_feeds(conn, [FeedSpec(URL, "CNIL (fr)")], now=NOW)
    assert again.name == "CNIL (fr)"
    assert again.is_due(NOW)


def test_a_failing_feed_backs_off_exponentially_and_recovers(store: Store) -> None:
    fid = feed_id(store)
    rng = random.Random(1)
    waits = []
    with store.begin() as conn:
        for _ in range(3):
            record_fetch(conn, fid, failed(), NOW, rng=rng)
            state = get_feed(conn, fid)
            assert state is not None
            assert state.next_try is not None
            waits.append(state.next_try - NOW)
        assert not state.is_due(NOW + timedelta(minutes=5))
        assert state.is_due(NOW, force=True)
        assert state.failures == 3
        assert state.last_error == "HTTP 500"
        record_fetch(conn, fid, FetchResult(URL, FetchStatus.OK, content=b"x", etag='"e"'), NOW)
        ok = get_feed(conn, fid)
    assert waits[0] < waits[1] < waits[2]
    assert timedelta(minutes=9) <= waits[0] <= timedelta(minutes=11)
    assert ok is not None
    assert (ok.failures, ok.last_error, ok.next_try, ok.etag) == (0, None, None, '"e"')
    assert ok.last_ok == NOW


def test_backoff_never_exceeds_a_day() -> None:
    assert backoff_delay(40, rng=random.Random(0)) == BACKOFF_MAX


def test_gone_disables_the_feed_with_a_warning(store: Store) -> None:
    fid = feed_id(store)
    with store.begin() as conn:
        warnings = record_fetch(conn, fid, failed(gone=True), NOW)
        state = get_feed(conn, fid)
    assert state is not None
    assert state.disabled
    assert not state.is_due(NOW + timedelta(days=365), force=True)
    assert any("410" in w for w in warnings)


def test_a_permanent_redirect_moves_the_feed_but_keeps_the_configured_key(store: Store) -> None:
    fid = feed_id(store)
    new = "https://www.cnil.example/rss.xml"
    result = FetchResult(URL, FetchStatus.OK, content=b"x", permanent_redirect=new)
    with store.begin() as conn:
        warnings = record_fetch(conn, fid, result, NOW)
        [state] = sync_feeds(conn, [FeedSpec(URL, "CNIL")], now=NOW)
    assert state.id == fid
    assert state.fetch_url == new
    assert state.request().url == new
    assert any("update the config" in w for w in warnings)


def test_retry_after_longer_than_the_backoff_is_honoured(store: Store) -> None:
    fid = feed_id(store)
    with store.begin() as conn:
        record_fetch(conn, fid, failed(retry_after=7200.0), NOW)
        state = get_feed(conn, fid)
    assert state is not None
    assert state.next_try == NOW + timedelta(hours=2)


def test_max_age_delays_the_next_fetch_unless_forced(store: Store) -> None:
    fid = feed_id(store)
    ok = FetchResult(URL, FetchStatus.NOT_MODIFIED, http_status=304, retry_after=600.0)
    with store.begin() as conn:
        record_fetch(conn, fid, ok, NOW)
        state = get_feed(conn, fid)
    assert state is not None
    assert not state.is_due(NOW + timedelta(minutes=5))
    assert state.is_due(NOW + timedelta(minutes=5), force=True)
    assert state.is_due(NOW + timedelta(minutes=10))


def test_a_body_that_is_not_a_feed_counts_as_a_failure_and_forgets_validators(
    store: Store,
) -> None:
    fid = feed_id(store)
    ok = FetchResult(URL, FetchStatus.OK, content=b"<html>", etag='"v1"')
    with store.begin() as conn:
        record_fetch(conn, fid, ok, NOW, parse_error="not a feed")
        state = get_feed(conn, fid)
    assert state is not None
    assert (state.failures, state.last_error, state.etag) == (1, "not a feed", None)


def test_an_rss_ttl_delays_the_next_fetch_at_most_a_day(store: Store) -> None:
    fid = feed_id(store)
    with store.begin() as conn:
        set_content_hash(conn, fid, "h1", title="CNIL", ttl=7200.0, now=NOW)
        two_hours = get_feed(conn, fid)
        set_content_hash(conn, fid, "h2", ttl=90 * 86400.0, now=NOW)
        capped = get_feed(conn, fid)
    assert two_hours is not None
    assert two_hours.next_try == NOW + timedelta(hours=2)
    assert not two_hours.is_due(NOW + timedelta(hours=1))
    assert capped is not None
    assert capped.next_try == NOW + BACKOFF_MAX
    assert (capped.content_hash, capped.title) == ("h2", "CNIL")


def test_thousands_of_configured_feeds_sync_in_config_order(store: Store) -> None:
    specs = [FeedSpec(f"https://feeds.example/{i}.xml", f"Feed {i}") for i in range(2500)]
    with store.begin() as conn:
        first = sync_feeds(conn, list(reversed(specs)), now=NOW)
        again = sync_feeds(conn, specs, now=NOW)
    assert [f.url for f in first] == [s.url for s in reversed(specs)]
    assert [f.url for f in again] == [s.url for s in specs]
    assert len({f.id for f in again}) == 2500


def test_a_year_long_max_age_or_retry_after_waits_a_day_at_most(store: Store) -> None:
    fid = feed_id(store)
    year = 365 * 86400.0
    with store.begin() as conn:
        record_fetch(conn, fid, FetchResult(URL, FetchStatus.NOT_MODIFIED, retry_after=year), NOW)
        cached = get_feed(conn, fid)
        record_fetch(conn, fid, failed(retry_after=year), NOW, rng=random.Random(3))
        refused = get_feed(conn, fid)
    assert cached is not None
    assert cached.next_try == NOW + BACKOFF_MAX
    assert refused is not None
    assert refused.next_try == NOW + BACKOFF_MAX
