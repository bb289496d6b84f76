"""Shared by the delivery tests and benchmarks: a stored two-topic issue, settings, subscribers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select

from digest.config import Settings, parse_settings
from digest.models import IssueContent, IssueEntry, IssueSection, SubscriberStatus
from digest.store import Store, open_store, schema
from digest.store.issues import save_issue
from digest.tokens import new_token_key

SECRET = "delivery-test-secret-0123456789abcdef"
WHEN = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def issue_content(number: int = 1, *, per_topic: int = 3) -> IssueContent:
    sections = []
    item_id = 0
    for topic, title, lang_title in (
        ("sovereign_cloud", "Sovereign cloud", "Une page se tourne pour le cloud souverain"),
        ("data_protection", "Data protection", "La CNIL publie ses recommandations"),
    ):
        entries = []
        for i in range(per_topic):
            item_id += 1
            entries.append(
                IssueEntry(
                    item_id=item_id,
                    url=f"https://news.example.org/{topic}/{i}",
                    title=f"{lang_title} ({i + 1})",
                    source="Les Échos" if i % 2 else "Example News",
                    published=WHEN - timedelta(days=i),
                    summary="Le marché français du cloud évolue : qualification SecNumCloud, "
                    "hébergeurs européens et exigences de souveraineté des données.",
                    topic_id=topic,
                )
            )
        sections.append(IssueSection(topic_id=topic, title=title, entries=tuple(entries)))
    return IssueContent(
        number=number,
        title="Veille numérique",
        language="fr",
        timezone="Europe/Paris",
        created=WHEN,
        period_start=WHEN - timedelta(days=7),
        period_end=WHEN,
        sections=tuple(sections),
    )


def _ensure_items(conn: Any, content: IssueContent) -> None:
    """The issue's entries refer to stored items: create a feed and those items if missing."""
    feed_url = "https://news.example.org/feed.xml"
    feed_id = conn.execute(select(schema.feeds.c.id).where(schema.feeds.c.url == feed_url)).scalar()
    if feed_id is None:
        feed_id = conn.execute(
            insert(schema.feeds).values(url=feed_url, created=WHEN, failures=0, disabled=False)
        ).inserted_primary_key[0]
    for section in content.sections:
        for e in section.entries:
            if conn.execute(
                select(schema.items.c.id).where(schema.items.c.id == e.item_id)
            ).first():
                continue
            conn.execute(
                insert(schema.items).values(
                    id=e.item_id,
                    feed_id=feed_id,
                    guid=e.url,
                    url=e.url,
                    canonical_url=e.url,
                    title=e.title,
                    published=e.published,
                    dated=True,
                    content_html="",
                    summary_html="",
                    first_seen=e.published,
                )
            )


def store_issue(store: Store, number: int = 1, **kw: Any) -> IssueContent:
    content = issue_content(number, **kw)
    with store.begin() as conn:
        _ensure_items(conn, content)
        save_issue(
            conn,
            content,
            subject=f"Veille numérique #{number}",
            html=f"<html><body><h1>Veille numérique #{number}</h1></body></html>",
            text=f"Veille numérique #{number}",
        )
    return content


def settings(**sections: dict[str, Any]) -> Settings:
    data: dict[str, Any] = {
        "digest": {"title": "Veille numérique", "language": "fr"},
        "delivery": {"mode": "outbox", "from": "Veille <veille@news.example.org>"},
    }
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values}
    return parse_settings(data, "test.toml")


def add_people(
    store: Store,
    emails: list[str],
    *,
    topics: str = "",
    status: SubscriberStatus = SubscriberStatus.ACTIVE,
    language: str | None = None,
) -> None:
    """Insert subscribers fast (benchmarks add tens of thousands)."""
    rows = [
        {
            "email": e,
            "email_key": e.casefold(),
            "name": f"Reader {i}",
            "status": status.value,
            "topics": topics,
            "language": language,
            "created": WHEN,
            "source": "test",
            "token_key": new_token_key(),
        }
        for i, e in enumerate(emails)
    ]
    with store.begin() as conn:
        for start in range(0, len(rows), 5000):
            conn.execute(insert(schema.subscribers), rows[start : start + 5000])


def smtp_config(
    tmp_path: Path, db_url: str, port: int, *, connections: int = 1, daemon: str = ""
) -> Path:
    """A French digest sending through the local SMTP server on ``port``; ``daemon``: the text of
    a ``[daemon]`` section (none: the defaults, a 60 s lease and no lock wait)."""
    cfg = tmp_path / "digest.toml"
    cfg.write_text(
        f"""
[digest]
title = "Veille numérique"
language = "fr"
[storage]
url = "{db_url}"
[delivery]
mode = "smtp"
from = "Veille <veille@news.example.org>"
[smtp]
host = "127.0.0.1"
port = {port}
security = "none"
password_env = ""
connections = {connections}
{daemon}""",
        encoding="utf-8",
    )
    return cfg


def delivery_states(db_url: str) -> dict[str, int]:
    """How many delivery rows are in each state."""
    with open_store(db_url).connect() as conn:
        rows = conn.execute(
            select(schema.deliveries.c.state, func.count()).group_by(schema.deliveries.c.state)
        ).all()
    return {str(state): int(n) for state, n in rows}
