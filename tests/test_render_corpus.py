"""Every feed of the shared corpus, real and hostile, renders without error and without script."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import feedparser
import pytest

from digest.models import AlsoCovered, IssueContent, IssueEntry, IssueSection
from digest.render import personalize, render_issue, render_page

WHEN = datetime(2025, 11, 4, tzinfo=UTC)


def corpus_issue(path: Path) -> IssueContent | None:
    """The feed's entries as one issue, raw from feedparser (harsher than our parse stage)."""
    d = feedparser.parse(path.read_bytes())
    entries = tuple(
        IssueEntry(
            item_id=i,
            url=str(e.get("link", "")),
            title=str(e.get("title", "")) or "(untitled)",
            source=str(d.feed.get("title", "")) or path.name,
            published=WHEN,
            summary=str(e.get("summary", "")),
            topic_id="t",
            summary_engine="llm:test",
            also=tuple(
                AlsoCovered(str(link.get("title") or link.get("rel") or "?"), str(link.get("href")))
                for link in e.get("links", [])
            ),
        )
        for i, e in enumerate(d.entries[:40])
    )
    if not entries:
        return None
    title = str(d.feed.get("title", "")) or path.name
    section = IssueSection("t", title, entries)
    return IssueContent(1, title, "fr", "Europe/Paris", WHEN, WHEN, WHEN, (section,))


def check_folder(folder: Path) -> int:
    rendered = 0
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        content = corpus_issue(path)
        if content is None:
            continue
        html, text = personalize(
            render_issue(content),
            name="Ada",
            unsubscribe_url="https://digest.example.org/u/x",
            preferences_url=None,
        )
        for what, out in (("html", html), ("text", text), ("page", render_page(content))):
            low = out.lower()
            assert "<script" not in low, f"{path.name}: <script in {what}"
            assert "javascript:" not in low, f"{path.name}: javascript: in {what}"
        rendered += 1
    return rendered


def test_hostile_feeds_render_without_script(corpus_dir: Path) -> None:
    assert check_folder(corpus_dir / "feeds-hostile") > 20


@pytest.mark.slow
def test_real_feeds_render_without_script(corpus_dir: Path) -> None:
    assert check_folder(corpus_dir / "feeds-real") > 60
