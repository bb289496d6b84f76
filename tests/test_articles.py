"""Decide on the article, not the teaser: teasers of ``full_text`` feeds that score above a low
floor have their article page fetched (guarded fetcher, real local server) before the topic
decision, at most ``[fetch] full_text_decisions`` per run, and the page is kept with the item."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from conftest import run_cli
from digest.cli.app import out as stdout_console
from digest.config import Settings, parse_settings
from digest.pipeline.collect import collect
from digest.pipeline.issue import build_issue
from digest.store import open_store
from digest.store.articles import load_full_texts
from digest.store.items import iter_items, load_topic_matches

NOW = datetime.now(UTC)

TOPICS: dict[str, Any] = {
    "sovereign_cloud": {
        "title": "Sovereign cloud",
        "threshold": 3.0,
        # "cloud" alone is weak: in a title it scores 1, a third of the threshold.
        "include": [
            {"term": "SecNumCloud", "weight": 3},
            "cloud souverain",
            "sovereign cloud",
            {"term": "cloud", "weight": 0.5},
        ],
    }
}

ON_TOPIC = "\n".join(
    [
        "The ministry has chosen a SecNumCloud qualified provider for its sensitive workloads.",
        "The move to a sovereign cloud follows a year of talks with French hosting firms.",
        "Officials said the contract rules out any provider subject to foreign laws.",
        "The migration of the first applications starts in the spring, the ministry said.",
    ]
)
OFF_TOPIC = "\n".join(
    [
        "A games publisher opens a streaming service for players on televisions and phones.",
        "Subscribers can play recent titles without a console, the company said on Friday.",
        "The service launches in twelve countries with a catalogue of two hundred games.",
        "Prices start at ten euros a month, with a free trial for the first week.",
    ]
)


def page(title: str, text: str) -> str:
    body = "".join(f"<p>{p}</p>" for p in text.splitlines())
    return (
        f"<!doctype html><html><head><title>{title}</title></head><body>"
        "<nav><a href='/'>Home</a></nav>"
        f"<article><h1>{title}</h1>{body}</article>"
        "<footer>© Example Media</footer></body></html>"
    )


def teaser_feed(base: str, items: list[tuple[str, str, str]]) -> str:
    """RSS whose items are (slug, title, one-sentence teaser), linking to ``base``/a/slug;
    the first item is the newest."""
    body = "".join(
        f"<item><title>{t}</title><link>{base}/a/{slug}</link><guid>{slug}</guid>"
        f"<pubDate>{format_datetime(NOW - timedelta(hours=1 + i))}</pubDate>"
        f"<description>{d}</description></item>"
        for i, (slug, t, d) in enumerate(items)
    )
    return (
        "<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel><title>Teasers"
        f"</title><link>{base}</link><description>x</description>{body}</channel></rss>"
    )


def settings_for(
    tmp_path: Path, feed_url: str, *, full_text: bool = True, **fetch: Any
) -> Settings:
    return parse_settings(
        {
            "storage": {"url": f"sqlite:///{tmp_path}/var/test.db"},
            "delivery": {"mode": "outbox", "outbox_dir": str(tmp_path / "outbox")},
            "fetch": {"parse_workers": 1, "allow_private": True, **fetch},
            "feeds": [{"url": feed_url, "name": "Teasers", "full_text": full_text}],
            "topics": TOPICS,
        },
        "test.toml",
    )


def page_requests(httpserver: HTTPServer) -> list[str]:
    return [req.path for req, _ in httpserver.log if req.path.startswith("/a/")]


def kept(settings: Settings) -> dict[str, bool]:
    store = open_store(settings.storage.url)
    with store.connect() as conn:
        out = {
            s.item.guid: any(m.kept for m in load_topic_matches(conn, s.id))
            for s in iter_items(conn)
        }
    store.close()
    return out


@pytest.fixture
def teasers(httpserver: HTTPServer) -> str:
    base = httpserver.url_for("").rstrip("/")
    httpserver.expect_request("/feed.xml").respond_with_data(
        teaser_feed(
            base,
            [
                ("ministry", "The ministry moves its cloud", "A decision was taken on Tuesday."),
                ("gamers", "A new cloud for gamers", "It launches on Friday."),
                ("weather", "Sun expected on Sunday", "Warm for the season."),
            ],
        ),
        content_type="application/rss+xml",
    )
    httpserver.expect_request("/a/ministry").respond_with_data(
        page("The ministry moves its cloud", ON_TOPIC), content_type="text/html"
    )
    httpserver.expect_request("/a/gamers").respond_with_data(
        page("A new cloud for gamers", OFF_TOPIC), content_type="text/html"
    )
    httpserver.expect_request("/a/weather").respond_with_data(
        page("Sun expected on Sunday", "Sun.\nMore sun."), content_type="text/html"
    )
    return httpserver.url_for("/feed.xml")


def test_an_on_topic_article_behind_a_keyword_less_teaser_is_kept(
    teasers: str, httpserver: HTTPServer, tmp_path: Path
) -> None:
    settings = settings_for(tmp_path, teasers)
    counts = collect(settings, open_store(settings.storage.url))
    assert dict(counts.kept_per_topic) == {"sovereign_cloud": 1}
    assert kept(settings) == {"ministry": True, "gamers": False, "weather": False}
    # Only the teasers above the floor were read; the weather item never was.
    assert sorted(page_requests(httpserver)) == ["/a/gamers", "/a/ministry"]


def test_the_article_is_kept_with_the_item_and_never_fetched_twice(
    teasers: str, httpserver: HTTPServer, tmp_path: Path
) -> None:
    settings = settings_for(tmp_path, teasers)
    store = open_store(settings.storage.url)
    collect(settings, store)
    with store.connect() as conn:
        ids = {s.item.guid: s.id for s in iter_items(conn)}
        texts = load_full_texts(conn, ids.values())
    assert "SecNumCloud qualified provider" in texts[ids["ministry"]]
    assert ids["weather"] not in texts
    # The issue summarizes the kept item from the stored page: no second request.
    content = build_issue(settings, store, record=True)
    assert content is not None
    [entry] = [e for s in content.sections for e in s.entries]
    assert entry.title == "The ministry moves its cloud"
    assert "SecNumCloud" in entry.summary or "sovereign cloud" in entry.summary
    assert page_requests(httpserver).count("/a/ministry") == 1


def test_without_full_text_the_teaser_decides(
    teasers: str, httpserver: HTTPServer, tmp_path: Path
) -> None:
    settings = settings_for(tmp_path, teasers, full_text=False)
    collect(settings, open_store(settings.storage.url))
    assert kept(settings) == {"ministry": False, "gamers": False, "weather": False}
    assert page_requests(httpserver) == []


def test_a_zero_floor_reads_every_teaser(
    teasers: str, httpserver: HTTPServer, tmp_path: Path
) -> None:
    settings = settings_for(tmp_path, teasers, full_text_floor=0.0)
    collect(settings, open_store(settings.storage.url))
    assert sorted(page_requests(httpserver)) == ["/a/gamers", "/a/ministry", "/a/weather"]


def test_at_most_full_text_decisions_pages_are_read_per_run(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    base = httpserver.url_for("").rstrip("/")
    slugs = [f"s{n}" for n in range(6)]
    httpserver.expect_request("/feed.xml").respond_with_data(
        teaser_feed(base, [(s, f"Cloud move number {s}", "Read more.") for s in slugs]),
        content_type="application/rss+xml",
    )
    for s in slugs:
        httpserver.expect_request(f"/a/{s}").respond_with_data(
            page(f"Cloud move {s}", ON_TOPIC), content_type="text/html"
        )
    settings = settings_for(tmp_path, httpserver.url_for("/feed.xml"), full_text_decisions=2)
    counts = collect(settings, open_store(settings.storage.url))
    # Equal teaser scores: the newest two are read, the others decided on their teaser.
    assert sorted(page_requests(httpserver)) == ["/a/s0", "/a/s1"]
    assert dict(counts.kept_per_topic) == {"sovereign_cloud": 2}
    assert kept(settings) == {s: s in {"s0", "s1"} for s in slugs}


def test_a_page_that_fails_leaves_the_teaser_decision(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    base = httpserver.url_for("").rstrip("/")
    httpserver.expect_request("/feed.xml").respond_with_data(
        teaser_feed(base, [("gone", "The ministry moves its cloud", "Tuesday.")]),
        content_type="application/rss+xml",
    )
    httpserver.expect_request("/a/gone").respond_with_data("gone", status=404)
    settings = settings_for(tmp_path, httpserver.url_for("/feed.xml"))
    counts = collect(settings, open_store(settings.storage.url))
    assert (counts.items_new, counts.items_failed) == (1, 0)
    assert kept(settings) == {"gone": False}


@pytest.fixture
def cli_config(teasers: str, tmp_path: Path, workdir: Path) -> tuple[Settings, Path]:
    """The teaser feed collected once, and the same settings as a config file for the CLI."""
    settings = settings_for(tmp_path, teasers)
    collect(settings, open_store(settings.storage.url))
    cfg = workdir / "digest.toml"
    cfg.write_text(
        f"""[storage]
url = "{settings.storage.url}"
[[feeds]]
url = "{teasers}"
full_text = true
[topics.sovereign_cloud]
title = "Sovereign cloud"
threshold = 3.0
include = [{{ term = "SecNumCloud", weight = 3 }}, "cloud souverain", "sovereign cloud",
  {{ term = "cloud", weight = 0.5 }}]
""",
        encoding="utf-8",
    )
    return settings, cfg


def test_explain_says_the_decision_was_taken_on_the_article(
    cli_config: tuple[Settings, Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings, cfg = cli_config
    store = open_store(settings.storage.url)
    with store.connect() as conn:
        [item_id] = [s.id for s in iter_items(conn) if s.item.guid == "ministry"]
    monkeypatch.setattr(stdout_console, "_width", 200)
    code, stdout, _ = run_cli(capsys, "--config", str(cfg), "explain", str(item_id))
    assert code == 0
    assert "decided on the article (" in stdout
    assert "sovereign_cloud (Sovereign cloud): KEPT" in stdout
    assert "'SecNumCloud' in text" in stdout


def test_topics_test_decides_a_teaser_on_its_article_as_the_fetch_did(
    cli_config: tuple[Settings, Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, cfg = cli_config
    monkeypatch.setattr(stdout_console, "_width", 200)
    code, stdout, _ = run_cli(capsys, "--config", str(cfg), "topics", "test", "--since", "1d")
    assert code == 0
    assert "sovereign_cloud: keeps 1" in stdout
    assert "The ministry moves its cloud" in stdout
