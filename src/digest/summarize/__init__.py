"""Summaries a reader trusts: the Summarizer Protocol and its engines (``pipeline.wiring``
builds them from the settings): ``extractive`` (the article's own sentences) and ``llm`` (an
OpenAI-compatible chat-completions endpoint, cached, falling back to extractive on any failure).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from digest.models import Summary
from digest.summarize.extractive import ExtractiveSummarizer

if TYPE_CHECKING:
    from digest.summarize.llm import LLMOptions, LLMSummarizer, SummaryCache

#: Names of the ``llm`` engine, imported on first use: the fetch stage imports this package for
#: language detection and must not pay for the HTTP client (httpx) an LLM engine needs.
_LAZY = frozenset({"LLMOptions", "LLMSummarizer", "SummaryCache"})


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from digest.summarize import llm

        return getattr(llm, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
