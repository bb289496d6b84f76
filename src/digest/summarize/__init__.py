"""Summaries a reader trusts: the Summarizer Protocol and its engines (``pipeline.wiring``
builds them from the settings): ``extractive`` (the article's own sentences) and ``llm`` (an
OpenAI-compatible chat-completions endpoint, cached, falling back to extractive on any failure).
"""

from __future__ import annotations

from typing import Protocol

from digest.models import Summary
from digest.summarize.extractive import ExtractiveSummarizer
from digest.summarize.llm import LLMOptions, LLMSummarizer, SummaryCache


class Summarizer(Protocol):
    """Turns one item (title + HTML or text) into a short summary in the item's language."""

    name: str

    def summarize(self, title: str, html: str, *, language: str | None = None) -> Summary: ...


ENGINES = ("extractive", "llm")


__all__ = [
    "ENGINES",
    "ExtractiveSummarizer",
    "LLMOptions",
    "LLMSummarizer",
    "Summarizer",
    "SummaryCache",
]
