"""A small sample issue for ``digest check``: every part of the templates gets exercised
(two sections, a foreign-language item, "also covered", a machine-written summary, a lead)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from digest.models import AlsoCovered, IssueContent, IssueEntry, IssueSection

_WHEN = datetime(2026, 1, 12, 8, 0, tzinfo=UTC)


def sample_issue(
    language: str = "en", base_url: str | None = "https://example.org"
) -> IssueContent:
    other = "fr" if language != "fr" else "en"
    one = IssueEntry(
        item_id=1,
        url="https://www.example.com/2026/cloud",
        title="A page is turning for the sovereign cloud",
        source="Example News",
        published=_WHEN,
        summary="The first sentence of a sample summary. A second one follows it.",
        topic_id="first",
        score=3.0,
        summary_engine="llm:sample",
        also=(AlsoCovered("Other Paper", "https://other.example.net/a"),),
        language=language,
        reading_minutes=4,
    )
    two = IssueEntry(
        item_id=2,
        url="https://example.fr/article",
        title="Un article dans une autre langue",
        source="Le Journal",
        published=_WHEN - timedelta(days=1),
        summary="Un résumé en français.\n\nEn deux paragraphes.",
        topic_id="second",
        score=1.0,
        language=other,
    )
    return IssueContent(
        number=1,
        title="Sample digest",
        language=language,
        timezone="UTC",
        created=_WHEN,
        period_start=_WHEN - timedelta(days=7),
        period_end=_WHEN,
        sections=(
            IssueSection("first", "First topic", (one,)),
            IssueSection("second", "Second topic", (two,)),
        ),
        base_url=base_url,
    )
