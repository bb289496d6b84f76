"""Every feed of ../shared/corpus (real and hostile), served over HTTP with ETag and 304, goes
through fetch -> parse -> store -> summarize -> render without an exception, and nothing stored
or rendered carries ``<script`` or ``javascript:``."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from sqlalchemy import select
from werkzeug import Request, Response

from digest.config import Settings, parse_settings
from digest.models import IssueContent, IssueEntry, IssueSection, StoredItem
from digest.pipeline.collect import collect
from digest.pipeline.issue import send
from digest.pipeline.summaries import summarize_items
from digest.render import render_issue, render_page
from digest.store import Store, open_store, schema
from digest.store.feeds import list_feeds
from digest.store.issues import load_issue
from digest.store.items import iter_items
from digest.store.subscribers import add_subscriber

pytestmark = pytest.mark.slow

DANGER = re.compile(r"<script|javascript:", re.IGNORECASE)


def corpus_files(corpus: Path) -> list[Path]:
    return sorted(p for p in corpus.glob("feeds-*/*") if p.is_file())


def serve(path: Path) -> Callable[[Request], Response]:
    body = path.read_bytes()
    etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'

    def handle(request: Request) -> Response:
        if request.headers.get("If-None-Match") == etag:
            return Response(status=304, headers={"ETag": etag})
        # No charset on purpose: the document's own declaration (or its absence) must do.
        return Response(body, content_type="application/xml", headers={"ETag": etag})

    return handle


@pytest.fixture(scope="module")
def corpus_run(
    corpus_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Settings, Store, Any, Any, list[Path], datetime]]:
    files = corpus_files(corpus_dir)
    tmp = tmp_path_factory.mktemp("corpus")
    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    try:
        feeds = []
        for i, path in enumerate(files):
            uri = f"/{path.parent.name}/{path.name}"
            server.expect_request(uri).respond_with_handler(serve(path))
            feeds.append({"url": server.url_for(uri), "name": f"{path.name} #{i}"})
        settings = parse_settings(
            {
                "digest": {"title": "Corpus", "max_items_per_topic": 100, "window_days": 365},
                "storage": {"url": f"sqlite:///{tmp}/corpus.db"},
                "delivery": {"mode": "outbox", "outbox_dir": str(tmp / "outbox")},
                "fetch": {"timeout": 10.0, "concurrency": 16, "allow_private": True},
                "feeds": feeds,
                # Very common words, so that most items are kept and go all the way through.
                "topics": {
                    "common_en": {"title": "English", "include": ["the", "and", "of"]},
                    "common_fr": {"title": "Français", "include": ["le", "la", "les", "de"]},
                },
            },
            "corpus.toml",
        )
        store = open_store(settings.storage.url)
        first = collect(settings, store)
        # The second round's clock, for telling which feeds it left alone (see below).
        second_at = datetime.now(UTC)
        second = collect(settings, store, now=second_at)
        yield settings, store, first, second, files, second_at
    finally:
        server.clear()
        if server.is_running():
            server.stop()


def test_every_corpus_feed_is_fetched_and_only_non_feeds_fail(corpus_run: Any) -> None:
    _, _, first, _, files, _ = corpus_run
    assert first.feeds_ok + first.feeds_failed == len(files)
    assert first.items_new > 1500
    # Failures are hostile documents that are not feeds at all, each with a one-line reason.
    for url, reason in first.failures:
        assert "\n" not in reason
        assert "/feeds-hostile/" in url, (url, reason)


def test_a_second_round_is_all_304(corpus_run: Any) -> None:
    _, store, first, second, _, second_at = corpus_run
    assert second.items_new == 0
    assert second.feeds_ok == 0
    # Feeds that failed are backing off, feeds with an RSS <ttl> wait for it: neither is fetched.
    # Judged at the second round's time: one corpus feed has a 2-minute <ttl>, which a slow
    # machine could see run out between that round and this line.
    with store.connect() as conn:
        waiting = [f for f in list_feeds(conn) if f.failures == 0 and not f.is_due(second_at)]
    assert waiting  # some corpus feeds declare a <ttl>
    assert second.feeds_not_modified + len(waiting) == first.feeds_ok


def test_nothing_stored_carries_script_or_javascript_urls(corpus_run: Any) -> None:
    _, store, *_ = corpus_run
    with store.connect() as conn:
        for stored in iter_items(conn):
            item = stored.item
            for value in (item.title, item.url, item.content_html, item.summary_html):
                assert not DANGER.search(value), (stored.source, value[:200])
        for row in conn.execute(select(schema.summaries.c.text)):
            assert not DANGER.search(row[0])


def _by_feed(store: Store) -> dict[str, list[StoredItem]]:
    out: dict[str, list[StoredItem]] = {}
    with store.connect() as conn:
        for stored in iter_items(conn):
            out.setdefault(stored.source, []).append(stored)
    return out


def test_every_stored_item_summarizes_and_renders_safely(corpus_run: Any) -> None:
    settings, store, *_ = corpus_run
    now = datetime.now(UTC)
    for source, items in _by_feed(store).items():
        summaries = summarize_items(settings, store, items, record=False)
        entries = tuple(
            IssueEntry(
                item_id=s.id,
                url=s.item.url,
                title=s.item.title,
                source=source,
                published=s.item.published,
                summary=summaries[s.id].text,
                topic_id="all",
            )
            for s in items
        )
        content = IssueContent(
            number=1,
            title="Corpus",
            language="en",
            timezone="UTC",
            created=now,
            period_start=now,
            period_end=now,
            sections=(IssueSection("all", source, entries),),
        )
        rendered = render_issue(content)
        for part in (rendered.html, rendered.text, render_page(content), rendered.subject):
            assert not DANGER.search(part), source


def test_the_real_issue_is_built_sent_and_written_safely(
    corpus_run: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, store, *_ = corpus_run
    monkeypatch.setenv("DIGEST_SECRET", "corpus-secret-" + "x" * 20)
    with store.begin() as conn:
        add_subscriber(conn, "reader@example.org", name="Reader")
    counts = send(settings, store)
    assert (counts.issue_number, counts.sent, counts.failed) == (1, 1, 0)
    folder = Path(settings.delivery.outbox_dir) / "1"
    written = [p.read_text(encoding="utf-8", errors="replace") for p in folder.iterdir()]
    assert len(written) == 2  # index.html and one .eml
    with store.connect() as conn:
        issue = load_issue(conn, 1)
    assert issue.content.item_count > 0
    for part in (*written, issue.html, issue.text, issue.subject):
        assert not DANGER.search(part)
