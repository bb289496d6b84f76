"""Issues are numbered in order, stored with their content, and read back exactly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from digest.errors import UsageError
from digest.models import (
    AlsoCovered,
    FeedSpec,
    IssueContent,
    IssueEntry,
    IssueSection,
    Item,
)
from digest.store import Store, open_store
from digest.store.feeds import sync_feeds
from digest.store.issues import (
    issue_from_json,
    issue_to_json,
    last_period_end,
    list_issues,
    load_issue,
    next_issue_number,
    save_issue,
    set_issue_status,
)
from digest.store.items import insert_items

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def content(number: int, item_id: int = 1, *, summary: str = "Résumé.") -> IssueContent:
    entry = IssueEntry(
        item_id=item_id,
        url="https://news.example/a",
        title="Cloud souverain : une page se tourne",
        source="Next",
        published=NOW - timedelta(hours=5),
        summary=summary,
        topic_id="sovereign_cloud",
        score=3.5,
        also=(AlsoCovered("LeMagIT", "https://lemagit.example/a"),),
    )
    return IssueContent(
        number=number,
        title="Veille",
        language="fr",
        timezone="Europe/Paris",
        created=NOW,
        period_start=NOW - timedelta(days=7),
        period_end=NOW,
        sections=(
            IssueSection(
                "sovereign_cloud", "Cloud souverain", (entry,), titles=(("en", "Sovereign"),)
            ),
        ),
    )


@pytest.fixture
def store(db_url: str) -> Store:
    return open_store(db_url)


def test_content_survives_json_exactly() -> None:
    c = content(3)
    assert issue_from_json(issue_to_json(c)) == c


@given(st.text(), st.integers(min_value=1, max_value=10**6))
def test_any_summary_text_survives_json(summary: str, number: int) -> None:
    c = content(number, summary=summary)
    assert issue_from_json(issue_to_json(c)) == c


def test_issues_are_numbered_from_one_and_read_back(store: Store) -> None:
    with store.begin() as conn:
        [feed] = sync_feeds(conn, [FeedSpec("https://news.example/feed")], now=NOW)
        [(item_id, _)] = insert_items(
            conn,
            feed.id,
            [
                Item(
                    "https://news.example/feed",
                    "g",
                    "https://news.example/a",
                    "https://news.example/a",
                    "t",
                    NOW,
                )
            ],
            now=NOW,
        )
        assert next_issue_number(conn) == 1
        assert last_period_end(conn) is None
        save_issue(conn, content(1, item_id), subject="Veille #1", html="<p>1</p>", text="1")
        assert next_issue_number(conn) == 2
        set_issue_status(conn, 1, "done")
    with store.connect() as conn:
        issue = load_issue(conn, 1)
        assert issue.content == content(1, item_id)
        assert (issue.subject, issue.html, issue.text, issue.status) == (
            "Veille #1",
            "<p>1</p>",
            "1",
            "done",
        )
        assert last_period_end(conn) == NOW
        assert [i.number for i in list_issues(conn)] == [1]
        with pytest.raises(UsageError, match="#7"):
            load_issue(conn, 7)
