"""Every real and hostile corpus feed parses into safe items (or is refused as not a feed)."""

from __future__ import annotations

import re
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path

import feedparser
import pytest

from conftest import CORPUS
from digest.errors import ParseError
from digest.models import Item
from digest.reader.parse import parse_feed

# Listed at collection time (one test per file); without the corpus the list is empty and
# test_corpus_is_all_there says why (and fails under CI=true).
FILES = sorted(p for p in CORPUS.glob("feeds-*/*") if p.is_file())
NOW = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
DANGER = re.compile(r"<script|javascript:", re.IGNORECASE)
TAG = re.compile(r"<[a-zA-Z/!?][^>]*>")


@pytest.mark.parametrize("path", FILES, ids=[f"{p.parent.name}/{p.name}" for p in FILES])
def test_corpus_feed_parses_into_safe_items(path: Path) -> None:
    content = path.read_bytes()
    try:
        feed = parse_feed(content, url=f"https://corpus.example/{path.name}", fetched_at=NOW)
    except ParseError:
        # Refusing is only allowed for documents with nothing in them.
        assert not feedparser.parse(content).entries
        return
    for item in feed.items:
        for f in fields(Item):
            value = getattr(item, f.name)
            if isinstance(value, str):
                assert not DANGER.search(value), (f.name, value[:200])
        assert not TAG.search(item.title), item.title
        assert item.title
        assert item.title.strip() == item.title
        assert item.published.tzinfo is not None
        assert item.canonical_url
    for value in (feed.title, feed.link, feed.language):
        assert value is None or not DANGER.search(value)


def test_corpus_is_all_there(corpus_dir: Path) -> None:
    assert len(FILES) >= 120
