"""The same link in a second feed: kept as coverage of the stored story ("also covered by" in
the email), never dropped; decided again with the second feed's settings."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from digest.config import Settings
from digest.models import AlsoCovered
from digest.pipeline.collect import collect
from digest.pipeline.issue import build_issue, send
from digest.store import open_store
from digest.store.items import count_items
from digest.store.sightings import load_sightings
from digest.store.subscribers import add_subscriber
from test_pipeline import settings_for

NOW = datetime.now(UTC)


def feed(title: str, items: list[tuple[str, str, str, str]]) -> str:
    """RSS 2.0; items are (guid, link, title, description)."""
    body = "".join(
        f"<item><title>{t}</title><link>{link}</link><guid isPermaLink='false'>{g}</guid>"
        f"<pubDate>{format_datetime(NOW - timedelta(hours=2))}</pubDate>"
        f"<description>{d}</description></item>"
        for g, link, t, d in items
    )
    return (
        "<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel>"
        f"<title>{title}</title><link>https://x.example/</link><description>x</description>"
        f"{body}</channel></rss>"
    )


STORY = "https://press.example/2026/cnil-fine"
PRESS = feed(
    "Press",
    [("p1", STORY, "CNIL fines a retailer under the GDPR", "Personal data kept too long.")],
)
# The same article, linked with tracking parameters, under its own guid and title.
WIRE = feed(
    "Wire",
    [
        (
            "w-77",
            STORY + "?utm_source=rss&amp;utm_medium=feed",
            "Retailer fined by French regulator",
            "The CNIL fined a retailer for GDPR breaches.",
        )
    ],
)
# A regulator's page the press linked first, without any topic word.
REGULATOR_PAGE = "https://regulator.example/news/decision-2026-12"
PRESS_QUIET = feed(
    "Press",
    [("p2", REGULATOR_PAGE, "A decision published today", "Read the decision.")],
)
REGULATOR = feed(
    "Regulator",
    [("r1", REGULATOR_PAGE, "Decision 2026-12", "The authority publishes a decision.")],
)


def _serve(httpserver: HTTPServer, path: str, body: str) -> str:
    httpserver.expect_request(path).respond_with_data(body, content_type="application/rss+xml")
    return httpserver.url_for(path)


@pytest.fixture
def press_and_wire(httpserver: HTTPServer, tmp_path: Path) -> Settings:
    return settings_for(
        tmp_path,
        [
            {"url": _serve(httpserver, "/press.xml", PRESS), "name": "Press"},
            {"url": _serve(httpserver, "/wire.xml", WIRE), "name": "Wire"},
        ],
    )


def test_a_link_already_stored_by_another_feed_is_recorded_as_coverage(
    press_and_wire: Settings,
) -> None:
    store = open_store(press_and_wire.storage.url)
    counts = collect(press_and_wire, store)
    assert counts.items_new == 1  # one article, one item
    with store.connect() as conn:
        assert count_items(conn) == 1
        [(item_id, seen)] = load_sightings(conn, [1]).items()
    assert item_id == 1
    assert seen == [("Wire", STORY + "?utm_source=rss&utm_medium=feed")]


def test_the_second_source_appears_under_also_covered_by(press_and_wire: Settings) -> None:
    store = open_store(press_and_wire.storage.url)
    collect(press_and_wire, store)
    content = build_issue(press_and_wire, store, record=False)
    assert content is not None
    [entry] = [e for s in content.sections for e in s.entries]
    assert entry.source == "Press"
    # Tracking parameters are stripped from the link shown, as for every entry.
    assert entry.also == (AlsoCovered("Wire", STORY),)


def test_the_email_says_also_covered_by_the_second_source(
    press_and_wire: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIGEST_SECRET", "test-secret-" + "x" * 20)
    store = open_store(press_and_wire.storage.url)
    with store.begin() as conn:
        add_subscriber(conn, "ann@example.org")
    collect(press_and_wire, store)
    assert send(press_and_wire, store).sent == 1
    [eml] = (Path(press_and_wire.delivery.outbox_dir) / "1").glob("*.eml")
    msg = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    text = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert text is not None
    assert html is not None
    plain, markup = text.get_content(), html.get_content()
    assert "Also covered by" in plain
    assert "Wire" in plain.split("Also covered by", 1)[1][:200]
    assert "Also covered by" in markup
    assert f'href="{STORY}"' in markup


def test_a_sighting_is_recorded_once_however_often_the_feed_is_read(
    press_and_wire: Settings,
) -> None:
    store = open_store(press_and_wire.storage.url)
    collect(press_and_wire, store)
    collect(press_and_wire, store, force=True)
    with store.connect() as conn:
        assert load_sightings(conn, [1]) == {
            1: [("Wire", STORY + "?utm_source=rss&utm_medium=feed")]
        }


def test_the_feed_that_sees_the_link_second_can_still_put_the_story_in_its_topic(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    settings = settings_for(
        tmp_path,
        [
            {"url": _serve(httpserver, "/press.xml", PRESS_QUIET), "name": "Press"},
            {
                "url": _serve(httpserver, "/regulator.xml", REGULATOR),
                "name": "Regulator",
                "always": ["data_protection"],
            },
        ],
    )
    store = open_store(settings.storage.url)
    counts = collect(settings, store)
    assert dict(counts.kept_per_topic) == {"data_protection": 1}
    content = build_issue(settings, store, record=False)
    assert content is not None
    [entry] = [e for s in content.sections for e in s.entries]
    assert entry.topic_id == "data_protection"
    assert entry.source == "Press"
    assert entry.also == (AlsoCovered("Regulator", REGULATOR_PAGE),)


@pytest.mark.sqlite_only  # reads sqlite_master
def test_the_w12b_revisions_downgrade_and_upgrade_again_with_the_data(
    press_and_wire: Settings,
) -> None:
    from alembic import command
    from sqlalchemy import create_engine

    from digest.store.migrations import alembic_config

    store = open_store(press_and_wire.storage.url)
    collect(press_and_wire, store)
    store.close()
    engine = create_engine(press_and_wire.storage.url)
    with engine.begin() as conn:
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "w10_item_failures")
    with engine.connect() as conn:
        tables = set(conn.exec_driver_sql("SELECT name FROM sqlite_master").scalars())
        columns = {r[1] for r in conn.exec_driver_sql("PRAGMA table_info(items)")}
    engine.dispose()
    assert "item_sightings" not in tables
    assert "full_text" not in columns
    store = open_store(press_and_wire.storage.url)  # back to head, items intact
    with store.connect() as conn:
        assert count_items(conn) == 1
        assert load_sightings(conn, [1]) == {}
    store.close()


def test_explain_lists_the_other_sources_of_the_link(
    press_and_wire: Settings,
    workdir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from conftest import run_cli
    from digest.cli.app import out as stdout_console

    collect(press_and_wire, open_store(press_and_wire.storage.url))
    press, wire = (f.url for f in press_and_wire.feeds)
    cfg = workdir / "digest.toml"
    cfg.write_text(
        f"""[storage]
url = "{press_and_wire.storage.url}"
[[feeds]]
url = "{press}"
name = "Press"
[[feeds]]
url = "{wire}"
name = "Wire"
[topics.data_protection]
title = "Data protection"
include = ["GDPR", "CNIL"]
""",
        encoding="utf-8",
    )
    monkeypatch.setattr(stdout_console, "_width", 200)
    code, stdout, _ = run_cli(capsys, "--config", str(cfg), "explain", "1")
    assert code == 0
    assert f"also carried by Wire: {STORY}?utm_source=rss&utm_medium=feed" in stdout
