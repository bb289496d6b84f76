"""Helpers shared by the web tests (no tests here): settings, a sample issue, form tokens."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from digest.config import Settings, parse_settings
from digest.models import FeedSpec, IssueContent, IssueEntry, IssueSection, Item, SubscriberStatus
from digest.render import render_page
from digest.store import Store
from digest.store import subscribers as subs
from digest.store.feeds import sync_feeds
from digest.store.issues import save_issue
from digest.store.items import insert_items
from digest.tokens import make_token

if TYPE_CHECKING:
    from playwright.sync_api import Browser

SECRET = b"web-tests-secret-0123456789"
NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)

TOPICS: dict[str, Any] = {
    "sovereign_cloud": {
        "title": "Sovereign cloud",
        "titles": {"fr": "Cloud souverain"},
        "include": ["sovereign cloud", "cloud souverain"],
    },
    "data_protection": {
        "title": "Data protection",
        "titles": {"fr": "Protection des données"},
        "include": ["GDPR", "RGPD"],
    },
}


def make_settings(tmp_path: Any, **sections: Any) -> Settings:
    data: dict[str, Any] = {
        "digest": {"title": "Veille", "language": "en"},
        "storage": {"url": f"sqlite:///{tmp_path}/digest.db"},
        "topics": TOPICS,
        "delivery": {"mode": "outbox", "outbox_dir": str(tmp_path / "outbox")},
    }
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values} if isinstance(values, dict) else values
    return parse_settings(data, "test.toml")


def sample_issue(number: int = 1, *, created: datetime = NOW) -> IssueContent:
    entries = (
        IssueEntry(
            item_id=number * 10 + 1,
            url="https://news.example/cloud",
            title="A page is turning for the French sovereign cloud",
            source="Next",
            published=created - timedelta(hours=5),
            summary="The state's cloud doctrine changes; operators must now hold SecNumCloud.",
            topic_id="sovereign_cloud",
            score=3.0,
        ),
        IssueEntry(
            item_id=number * 10 + 2,
            url="https://news.example/gdpr",
            title="CNIL fines a data broker under the GDPR",
            source="CNIL",
            published=created - timedelta(hours=9),
            summary="A fine of 1 million euros for reselling location data without consent.",
            topic_id="data_protection",
            score=2.0,
        ),
    )
    return IssueContent(
        number=number,
        title="Veille",
        language="en",
        timezone="Europe/Paris",
        created=created,
        period_start=created - timedelta(days=7),
        period_end=created,
        sections=(
            IssueSection("sovereign_cloud", "Sovereign cloud", entries[:1]),
            IssueSection("data_protection", "Data protection", entries[1:]),
        ),
        base_url="https://digest.example",
    )


def store_issue(store: Store, content: IssueContent) -> IssueContent:
    """Store the issue's items (under a sample feed) and the issue; returns it with real ids."""
    feed_url = "https://news.example/feed"
    with store.begin() as conn:
        [feed] = sync_feeds(conn, [FeedSpec(feed_url)], now=content.created)
        sections = []
        for section in content.sections:
            entries = []
            for entry in section.entries:
                url = f"{entry.url}/{content.number}"
                item = Item(feed_url, url, url, url, entry.title, entry.published)
                [(item_id, _)] = insert_items(conn, feed.id, [item], now=content.created)
                entries.append(dataclasses.replace(entry, item_id=item_id, url=url))
            sections.append(dataclasses.replace(section, entries=tuple(entries)))
        content = dataclasses.replace(content, sections=tuple(sections))
        save_issue(
            conn,
            content,
            subject=f"{content.title} #{content.number}",
            html=render_page(content),
            text="",
            status="done",
        )
    return content


def add_active(
    store: Store, address: str = "reader@example.org", **kw: Any
) -> subs.SubscriberRecord:
    with store.begin() as conn:
        return subs.add_subscriber(
            conn, address, status=SubscriberStatus.ACTIVE, source="cli", now=NOW, **kw
        )


def status_of(store: Store, address: str) -> SubscriberStatus:
    with store.connect() as conn:
        record = subs.get_by_email(conn, address)
    assert record is not None
    return record.status


def link_token(purpose: str, record: subs.SubscriberRecord) -> str:
    return make_token(SECRET, purpose, record.token_key)


def csrf_of(html: str) -> str:
    """The hidden CSRF field of the (first) form on a page."""
    found = re.search(r'name="csrf_token" value="([0-9a-f]+)"', html)
    assert found, "page has no CSRF field"
    return found.group(1)


# --------------------------------------------------------------------------- browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@contextmanager
def chromium() -> Iterator[Browser]:
    """Debian's headless chromium through Playwright; skipped only off CI when it is absent."""
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} not installed (make test installs it with apt-get as root)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"browser tests cannot be skipped under CI: {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()
