"""Summaries a reader trusts: the Summarizer Protocol, its engines, and ``make_summarizer``.

Engines: ``extractive`` (the article's own sentences) and ``llm`` (an OpenAI-compatible
chat-completions endpoint, cached, falling back to extractive on any failure).
"""

from __future__ import annotations

from typing import Protocol

from digest.errors import ConfigError
from digest.models import Summary
from digest.summarize.extractive import ExtractiveSummarizer
from digest.summarize.llm import LLMOptions, LLMSummarizer, SummaryCache


class Summarizer(Protocol):
    """Turns one item (title + HTML or text) into a short summary in the item's language."""

    name: str

    def summarize(self, title: str, html: str, *, language: str | None = None) -> Summary: ...


ENGINES = ("extractive", "llm")


def make_summarizer(
    engine: str,
    *,
    max_words: int,
    llm: LLMOptions | None = None,
    cache: SummaryCache | None = None,
) -> Summarizer:
    """The summarizer for ``[summary] engine``; "llm" needs ``llm`` options and falls back to
    an extractive summarizer with the same ``max_words``."""
    extractive = ExtractiveSummarizer(max_words=max_words)
    if engine == "extractive":
        return extractive
    if engine == "llm":
        if llm is None:
            raise ConfigError("summary.engine = 'llm' needs the [summary.llm] settings")
        return LLMSummarizer(
            base_url=llm.base_url,
            model=llm.model,
            api_key=llm.api_key,
            timeout=llm.timeout,
            max_words=llm.max_words,
            cache=cache,
            fallback=extractive,
        )
    raise ConfigError(f"summary.engine: unknown engine {engine!r} (expected one of {ENGINES})")


__all__ = [
    "ENGINES",
    "ExtractiveSummarizer",
    "LLMOptions",
    "LLMSummarizer",
    "Summarizer",
    "SummaryCache",
    "make_summarizer",
]
