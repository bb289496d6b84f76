"""The pipeline end to end against real local HTTP feeds: collect, build an issue, send it."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from digest.config import Settings, parse_settings
from digest.pipeline.collect import collect
from digest.pipeline.issue import build_issue, send
from digest.pipeline.outgoing import nothing_to_send
from digest.pipeline.outgoing import send as outgoing_send
from digest.pipeline.summaries import summarize_items
from digest.store import Store, open_store
from digest.store.feeds import list_feeds
from digest.store.issues import list_issues
from digest.store.items import iter_items, load_summaries
from digest.store.subscribers import add_subscriber

NOW = datetime.now(UTC)

TOPICS: dict[str, Any] = {
    "sovereign_cloud": {
        "title": "Sovereign cloud",
        "include": ["sovereign cloud", "SecNumCloud", "cloud souverain"],
        "exclude": ["cloud gaming"],
    },
    "data_protection": {
        "title": "Data protection",
        "include": ["GDPR", "RGPD", "personal data", "CNIL"],
    },
}


def rss(title: str, items: list[tuple[str, str, str]]) -> str:
    """An RSS 2.0 document; items are (guid, title, description)."""
    body = "".join(
        f"<item><title>{t}</title><link>https://news.example/{g}</link>"
        f"<guid isPermaLink='false'>{g}</guid>"
        f"<pubDate>{format_datetime(NOW - timedelta(hours=2))}</pubDate>"
        f"<description><![CDATA[<p>{d}</p>]]></description></item>"
        for g, t, d in items
    )
    return (
        "<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel>"
        f"<title>{title}</title><link>https://news.example/</link>"
        f"<description>x</description>{body}</channel></rss>"
    )


CLOUD = rss(
    "Cloud news",
    [
        (
            "c1",
            "SecNumCloud: a ministry picks a qualified host",
            "The ministry moves its sensitive workloads to a SecNumCloud qualified provider, "
            "away from a US hyperscaler. The contract runs for four years.",
        ),
        (
            "c2",
            "Cloud gaming arrives on smart TVs",
            "A sovereign cloud of games? No: a cloud gaming service for televisions.",
        ),
        ("c3", "Weather: a cloudy weekend", "Clouds and rain all weekend in the north."),
    ],
)
PRIVACY = rss(
    "Privacy news",
    [
        (
            "p1",
            "CNIL fines a retailer for GDPR breaches",
            "The CNIL fined a retailer 2 million euros for keeping personal data too long. "
            "Customers were never told how long their data was kept.",
        ),
    ],
)


def settings_for(tmp_path: Path, feeds: list[dict[str, Any]], **extra: Any) -> Settings:
    data: dict[str, Any] = {
        "digest": {"title": "Test digest", "window_days": 7},
        "storage": {"url": f"sqlite:///{tmp_path}/var/test.db"},
        "delivery": {"mode": "outbox", "outbox_dir": str(tmp_path / "outbox")},
        # Only a test that wants a feed to time out sets a short timeout: 2 s was within reach
        # of a loaded CI machine for a local feed.
        # The feeds are served on 127.0.0.1: allowed here as for a digest reading an intranet.
        "fetch": {"timeout": 20.0, "parse_workers": 1, "allow_private": True},
        "feeds": feeds,
        "topics": TOPICS,
    }
    for key, value in extra.items():
        data[key] = {**data.get(key, {}), **value}
    return parse_settings(data, "test.toml")


def etag_handler(body: str, etag: str) -> Callable[[Request], Response]:
    """Serve ``body`` with an ETag, and 304 to a request that already holds it."""

    def handle(request: Request) -> Response:
        if request.headers.get("If-None-Match") == etag:
            return Response(status=304, headers={"ETag": etag})
        return Response(body, content_type="application/rss+xml", headers={"ETag": etag})

    return handle


@pytest.fixture
def threaded_server() -> Iterator[HTTPServer]:
    """A server that answers requests in parallel, so one slow feed cannot hold up the rest."""
    server = HTTPServer(host="127.0.0.1", threaded=True)
    server.start()
    yield server
    server.clear()
    server.stop()


@pytest.fixture
def two_feeds(httpserver: HTTPServer, tmp_path: Path) -> tuple[Settings, Store]:
    httpserver.expect_request("/cloud.xml").respond_with_handler(etag_handler(CLOUD, '"c"'))
    httpserver.expect_request("/privacy.xml").respond_with_handler(etag_handler(PRIVACY, '"p"'))
    httpserver.expect_request("/broken.xml").respond_with_data("oops", status=500)
    settings = settings_for(
        tmp_path,
        [
            {"url": httpserver.url_for("/cloud.xml"), "name": "Cloud news"},
            {"url": httpserver.url_for("/privacy.xml"), "name": "Privacy news"},
            {"url": httpserver.url_for("/broken.xml"), "name": "Broken"},
        ],
    )
    return settings, open_store(settings.storage.url)


def test_collect_stores_items_decides_topics_and_records_a_failing_feed(
    two_feeds: tuple[Settings, Store],
) -> None:
    settings, store = two_feeds
    counts = collect(settings, store)
    assert (counts.feeds_ok, counts.feeds_failed, counts.items_new) == (2, 1, 4)
    assert dict(counts.kept_per_topic) == {"sovereign_cloud": 1, "data_protection": 1}
    [(url, reason)] = counts.failures
    assert url.endswith("/broken.xml")
    assert "500" in reason
    with store.connect() as conn:
        broken = next(f for f in list_feeds(conn) if f.url.endswith("/broken.xml"))
        assert broken.failures == 1
        assert broken.next_try is not None


def test_summaries_are_written_once_when_an_issue_takes_the_item_not_at_fetch_time(
    two_feeds: tuple[Settings, Store],
) -> None:
    settings, store = two_feeds
    assert collect(settings, store).summarized == 0
    with store.connect() as conn:
        kept_ids = [s.id for s in iter_items(conn) if s.item.guid in {"c1", "p1"}]
        assert load_summaries(conn, kept_ids) == {}
    assert build_issue(settings, store, record=False) is not None
    with store.connect() as conn:
        assert load_summaries(conn, kept_ids) == {}  # a preview stores nothing
    assert build_issue(settings, store, record=True) is not None
    with store.connect() as conn:
        summaries = load_summaries(conn, kept_ids)
    assert len(summaries) == 2
    assert all(s.text for s in summaries.values())


def test_a_second_collect_gets_304s_and_stores_nothing_new(
    two_feeds: tuple[Settings, Store],
) -> None:
    settings, store = two_feeds
    collect(settings, store)
    again = collect(settings, store)
    assert (again.feeds_ok, again.feeds_not_modified, again.items_new) == (0, 2, 0)
    # The broken feed is backing off: not even tried.
    assert again.feeds_failed == 0


def test_an_identical_body_without_validators_is_not_parsed_again(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    httpserver.expect_request("/plain.xml").respond_with_data(
        CLOUD, content_type="application/rss+xml"
    )
    settings = settings_for(tmp_path, [{"url": httpserver.url_for("/plain.xml")}])
    store = open_store(settings.storage.url)
    assert collect(settings, store).items_new == 3
    again = collect(settings, store)
    # The server said 200, not 304: "unchanged" (same bytes), never "not modified".
    assert (again.feeds_ok, again.feeds_not_modified, again.feeds_unchanged) == (0, 0, 1)
    assert again.items_new == 0


def test_a_feed_that_times_out_is_reported_and_the_others_go_on(
    threaded_server: HTTPServer, tmp_path: Path
) -> None:
    httpserver = threaded_server
    released = threading.Event()

    def slow(_: Request) -> Response:
        # Answers only once the test is over: late whatever the machine's load.
        released.wait(60)
        return Response(CLOUD, content_type="application/rss+xml")

    httpserver.expect_request("/slow.xml").respond_with_handler(slow)
    httpserver.expect_request("/privacy.xml").respond_with_data(
        PRIVACY, content_type="application/rss+xml"
    )
    settings = settings_for(
        tmp_path,
        [{"url": httpserver.url_for("/slow.xml")}, {"url": httpserver.url_for("/privacy.xml")}],
        # Long enough for the quick feed on a loaded CI machine (0.3 s timed it out now and then).
        fetch={"timeout": 3.0},
    )
    try:
        counts = collect(settings, open_store(settings.storage.url))
    finally:
        released.set()
    assert (counts.feeds_ok, counts.feeds_failed, counts.items_new) == (1, 1, 1)
    assert "slow.xml" in counts.failures[0][0]


def test_a_stop_during_fetch_stores_the_feeds_already_in_and_leaves_a_hung_one_untouched(
    httpserver: HTTPServer, tmp_path: Path, silent_site: str
) -> None:
    httpserver.expect_request("/privacy.xml").respond_with_data(
        PRIVACY, content_type="application/rss+xml"
    )
    hung = f"{silent_site}/feed.xml"
    settings = settings_for(
        tmp_path,
        [{"url": hung}, {"url": httpserver.url_for("/privacy.xml")}],
        fetch={"timeout": 60.0},
    )
    store = open_store(settings.storage.url)
    stop = threading.Event()

    def progress(stage: str, done: int, total: int) -> None:
        if stage == "fetch" and done == 1:  # the live feed is in: SIGTERM arrives now
            stop.set()

    counts = collect(settings, store, progress=progress, stop=stop)
    assert (counts.feeds_ok, counts.feeds_failed, counts.items_new) == (1, 0, 1)
    with store.connect() as conn:
        feeds = {f.url: f for f in list_feeds(conn)}
    assert feeds[hung].failures == 0
    assert feeds[hung].last_error is None
    assert feeds[httpserver.url_for("/privacy.xml")].last_ok is not None


def test_an_issue_has_one_section_per_topic_and_leaves_off_topic_items_out(
    two_feeds: tuple[Settings, Store],
) -> None:
    settings, store = two_feeds
    collect(settings, store)
    content = build_issue(settings, store, record=False)
    assert content is not None
    assert content.number == 1
    titles = {s.topic_id: [e.title for e in s.entries] for s in content.sections}
    assert titles == {
        "sovereign_cloud": ["SecNumCloud: a ministry picks a qualified host"],
        "data_protection": ["CNIL fines a retailer for GDPR breaches"],
    }
    assert all(e.summary for s in content.sections for e in s.entries)
    with store.connect() as conn:
        assert list_issues(conn) == []  # a preview records nothing


def test_a_recorded_issue_is_stored_and_the_next_one_waits_for_new_items(
    two_feeds: tuple[Settings, Store],
) -> None:
    settings, store = two_feeds
    collect(settings, store)
    first = build_issue(settings, store, record=True)
    assert first is not None
    with store.connect() as conn:
        [stored] = list_issues(conn)
    assert stored.content == first
    assert "SecNumCloud: a ministry picks a qualified host" in stored.html
    assert "SecNumCloud: a ministry picks a qualified host" in stored.text
    assert "{{{" not in stored.text  # no personal placeholder left in the stored text
    assert build_issue(settings, store, record=True) is None


def test_send_delivers_once_to_each_active_subscriber_and_never_twice(
    two_feeds: tuple[Settings, Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIGEST_SECRET", "test-secret-" + "x" * 20)
    settings, store = two_feeds
    with store.begin() as conn:
        add_subscriber(conn, "ann@example.org", name="Ann")
        add_subscriber(conn, "ben@example.org")
    collect(settings, store)
    counts = send(settings, store)
    assert (counts.issue_number, counts.sent, counts.failed) == (1, 2, 0)
    folder = Path(settings.delivery.outbox_dir) / "1"
    assert (folder / "index.html").is_file()
    assert len(list(folder.glob("*.eml"))) == 2
    again = send(settings, store)
    assert (again.issue_number, again.sent) == (None, 0)
    assert len(list(folder.glob("*.eml"))) == 2


def test_send_dry_run_stores_nothing_and_writes_nothing(
    two_feeds: tuple[Settings, Store],
) -> None:
    settings, store = two_feeds
    collect(settings, store)
    counts = send(settings, store, dry_run=True)
    assert (counts.issue_number, counts.sent) == (1, 0)
    with store.connect() as conn:
        assert list_issues(conn) == []
    assert not Path(settings.delivery.outbox_dir).exists()


def test_a_teaser_of_a_full_text_feed_is_summarized_from_the_article_page(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    article = (
        "<html><head><title>SecNumCloud</title></head><body><article>"
        "<h1>A ministry moves to a SecNumCloud provider</h1>"
        "<p>The ministry of health will move its most sensitive workloads to a provider "
        "qualified SecNumCloud by ANSSI, the national cybersecurity agency, by next summer.</p>"
        "<p>The migration covers patient records, payroll and the ministry's internal "
        "messaging, which are hosted today by an American cloud provider under a contract "
        "that ends in June.</p>"
        "<p>Officials said the qualification shields the data from extraterritorial laws "
        "such as the Cloud Act, a requirement of the state's cloud doctrine since 2021.</p>"
        "</article></body></html>"
    )
    httpserver.expect_request("/article").respond_with_data(article, content_type="text/html")
    teaser = rss("Teasers", [("t1", "SecNumCloud: the ministry moves", "Read more…")]).replace(
        "https://news.example/t1", httpserver.url_for("/article")
    )
    httpserver.expect_request("/teasers.xml").respond_with_data(
        teaser, content_type="application/rss+xml"
    )
    settings = settings_for(
        tmp_path,
        [{"url": httpserver.url_for("/teasers.xml"), "full_text": True, "allow_private": True}],
    )
    store = open_store(settings.storage.url)
    collect(settings, store)
    content = build_issue(settings, store, record=False)
    assert content is not None
    [entry] = content.sections[0].entries
    assert "ANSSI" in entry.summary


def test_one_story_in_two_feeds_is_one_entry_with_also_covered(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    text = (
        "The CNIL fined a retailer 2 million euros for keeping personal data too long, "
        "the regulator said on Tuesday."
    )
    a = rss("A", [("a1", "CNIL fines retailer 2 million euros over GDPR breaches", text)])
    b = rss("B", [("b1", "CNIL fines retailer €2 million over GDPR breaches", text)])
    httpserver.expect_request("/a.xml").respond_with_data(a, content_type="application/rss+xml")
    httpserver.expect_request("/b.xml").respond_with_data(b, content_type="application/rss+xml")
    settings = settings_for(
        tmp_path,
        [
            {"url": httpserver.url_for("/a.xml"), "name": "Source A"},
            {"url": httpserver.url_for("/b.xml"), "name": "Source B"},
        ],
    )
    store = open_store(settings.storage.url)
    collect(settings, store)
    content = build_issue(settings, store, record=False)
    assert content is not None
    [section] = content.sections
    [entry] = section.entries
    assert len(entry.also) == 1
    assert {entry.source, entry.also[0].source} == {"Source A", "Source B"}


def test_the_llm_engine_summarizes_an_issue_item_once_and_caches_answers_in_the_database(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    asked: list[str] = []

    def chat(request: Request) -> Response:
        asked.append(request.get_json()["model"])
        answer = "The regulator fined a company for keeping personal data for too long."
        return Response(
            json.dumps({"choices": [{"message": {"role": "assistant", "content": answer}}]}),
            content_type="application/json",
        )

    httpserver.expect_request("/v1/chat/completions", method="POST").respond_with_handler(chat)
    httpserver.expect_request("/privacy.xml").respond_with_data(
        PRIVACY, content_type="application/rss+xml"
    )
    settings = settings_for(
        tmp_path,
        [{"url": httpserver.url_for("/privacy.xml")}],
        summary={"engine": "llm", "llm": {"base_url": httpserver.url_for("/v1"), "model": "m1"}},
    )
    store = open_store(settings.storage.url)
    collect(settings, store)
    assert build_issue(settings, store, record=True) is not None
    with store.connect() as conn:
        [stored] = list(iter_items(conn))
        assert load_summaries(conn, [stored.id])[stored.id].engine == "llm:m1"
    # Summarizing the same item again (a preview, a rebuilt issue) asks the model nothing.
    again = summarize_items(settings, store, [stored], record=False)
    assert again[stored.id].text.startswith("The regulator fined")
    assert asked == ["m1"]


def test_a_moved_feed_is_fetched_at_its_new_address_and_a_gone_one_is_disabled(
    httpserver: HTTPServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    httpserver.expect_request("/old.xml").respond_with_data(
        "", status=301, headers={"Location": httpserver.url_for("/new.xml")}
    )
    httpserver.expect_request("/new.xml").respond_with_handler(etag_handler(PRIVACY, '"n"'))
    httpserver.expect_request("/gone.xml").respond_with_data("", status=410)
    old, gone = httpserver.url_for("/old.xml"), httpserver.url_for("/gone.xml")
    settings = settings_for(tmp_path, [{"url": old}, {"url": gone}])
    store = open_store(settings.storage.url)
    first = collect(settings, store)
    assert (first.feeds_ok, first.feeds_failed, first.items_new) == (1, 1, 1)
    assert "update the config" in caplog.text
    assert "410 Gone" in caplog.text
    with store.connect() as conn:
        feeds = {f.url: f for f in list_feeds(conn)}
    assert feeds[old].fetch_url == httpserver.url_for("/new.xml")
    assert feeds[gone].disabled

    httpserver.clear_log()
    second = collect(settings, store, force=True)
    # Forced: backoff ignored, validators still sent: the server's 304 is counted as such.
    assert (second.feeds_not_modified, second.feeds_unchanged, second.feeds_failed) == (1, 0, 0)
    paths = [request.path for request, _ in httpserver.log]
    assert paths == ["/new.xml"]  # neither the old address nor the gone feed


def test_the_cheap_look_before_send_agrees_with_the_issue_side_on_whether_there_is_work(
    two_feeds: tuple[Settings, Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIGEST_SECRET", "test-secret-" + "x" * 20)
    settings, store = two_feeds
    with store.begin() as conn:
        add_subscriber(conn, "ann@example.org", name="Ann")
    assert nothing_to_send(settings, store)  # nothing fetched yet
    collect(settings, store)
    assert not nothing_to_send(settings, store)  # kept items: the issue side is needed
    counts = outgoing_send(settings, store)
    assert (counts.issue_number, counts.sent) == (1, 1)
    assert nothing_to_send(settings, store)  # sent: nothing new since its period
    assert build_issue(settings, store, record=False) is None
    again = outgoing_send(settings, store)
    assert (again.issue_number, again.sent, again.summarized) == (None, 0, 0)
    collect(settings, store)  # all 304: still nothing
    assert nothing_to_send(settings, store)
