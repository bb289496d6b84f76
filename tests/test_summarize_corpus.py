"""Every item with text in the real-feed corpus gets a summary a reader can trust: non-empty,
within budget, whole sentences (or an honest "…"), no markup or boilerplate, in its language."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import feedparser
import pytest

from digest.models import Summary
from digest.summarize import ExtractiveSummarizer, clean
from digest.summarize.extractive import count_words
from digest.summarize.language import detect
from digest.summarize.sentences import split_sentences

MAX_WORDS = 60

# Parsing 74 feeds with feedparser and summarizing ~1,900 items takes ~10 s on this machine.
pytestmark = pytest.mark.slow

#: Real HTML elements only: "AddIdentity<TUser, TRole>" in a .NET post is text, not a tag.
HTML_TAG = re.compile(
    r"</?(?:a|abbr|b|blockquote|br|code|div|em|figure|h[1-6]|hr|i|iframe|img|li|ol|p|pre|"
    r"s|script|small|span|strong|style|sub|sup|table|td|tr|u|ul)\b[^<>]*>",
    re.IGNORECASE,
)
ENTITY = re.compile(r"&(?:#\d+|#x[0-9a-f]+|[a-z][a-z0-9]{1,31});", re.IGNORECASE)


@dataclass(frozen=True)
class CorpusItem:
    feed: str
    title: str
    html: str
    language: str | None


def corpus_items(corpus: Path) -> list[CorpusItem]:
    items = []
    for path in sorted((corpus / "feeds-real").iterdir()):
        parsed = feedparser.parse(path.read_bytes())
        feed_lang = parsed.feed.get("language")
        for entry in parsed.entries:
            content = entry.get("content") or []
            html = (content[0].get("value") if content else None) or entry.get("summary") or ""
            items.append(
                CorpusItem(
                    path.name, entry.get("title", ""), html, entry.get("language") or feed_lang
                )
            )
    return items


def made_of_whole_sentences(summary: str, source: str) -> bool:
    """The summary is source sentences in order, joined by a space (a standfirst may get a
    stop, a short label a dash), or it ends with "…" where it was cut on purpose."""
    if summary.endswith("…"):
        return True
    pos = 0
    for sentence in split_sentences(source):
        if summary.startswith(sentence, pos):
            pos += len(sentence)
            sep = re.match(r"(?:\.| —)? ?", summary[pos:])
            pos += sep.end() if sep else 0
    return pos >= len(summary)


@pytest.fixture(scope="module")
def summaries(corpus_dir: Path) -> list[tuple[CorpusItem, Summary]]:
    summarizer = ExtractiveSummarizer(max_words=MAX_WORDS)
    out = []
    for item in corpus_items(corpus_dir):
        summary = summarizer.summarize(item.title, item.html, language=item.language)
        if summary.source_text:  # items with text only (some carry a title and nothing else)
            out.append((item, summary))
    return out


def test_the_corpus_has_many_items_with_text(summaries: list[tuple[CorpusItem, Summary]]) -> None:
    assert len(summaries) > 1500
    assert {s.language for _, s in summaries} >= {"en", "fr", "de", "ru"}


def test_every_summary_is_trustworthy(summaries: list[tuple[CorpusItem, Summary]]) -> None:
    problems = []
    for item, summary in summaries:
        text, source = summary.text, summary.source_text
        where = f"{item.feed}: {item.title[:50]!r}: {text[:80]!r}"
        if not text:
            problems.append(f"{where}: empty")
        if count_words(text) > MAX_WORDS:
            problems.append(f"{where}: {count_words(text)} words")
        if not made_of_whole_sentences(text, source):
            problems.append(f"{where}: not whole sentences")
        if HTML_TAG.search(text) or ENTITY.search(text):
            problems.append(f"{where}: markup")
        if any(clean.is_boilerplate_line(line) for line in text.split("\n")):
            problems.append(f"{where}: boilerplate")
        for bad in ("Read more", "Lire la suite", "appeared first on", "All rights reserved"):
            if bad.casefold() in text.casefold():
                problems.append(f"{where}: {bad!r}")
    assert not problems, "\n".join(problems[:20])


def test_every_summary_is_in_the_items_language(
    summaries: list[tuple[CorpusItem, Summary]],
) -> None:
    problems = []
    for item, summary in summaries:
        language = summary.language
        expected = detect(summary.source_text, item.language)
        if language != expected:
            problems.append(f"{item.feed}: {item.title[:50]!r}: {language} != {expected}")
        text = summary.text
        # A summary long enough to judge on its own reads as that language too.
        if language in {"en", "fr"} and count_words(text) >= 25:
            alone = detect(text, None)
            if alone in {"en", "fr"} and alone != language:
                problems.append(f"{item.feed}: {text[:80]!r} reads as {alone}, item is {language}")
    assert not problems, "\n".join(problems[:20])
