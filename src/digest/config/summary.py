"""The ``[summary]`` section and its ``[summary.llm]`` table."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from digest.config.base import _Section


class LLMSection(_Section):
    base_url: str = "http://127.0.0.1:8000/v1"
    model: str = "gpt-4o-mini"
    api_key_env: str | None = None
    timeout: float = Field(default=30.0, gt=0)
    max_words: int = Field(default=80, ge=10)


class SummarySection(_Section):
    engine: Literal["extractive", "llm"] = "extractive"
    max_words: int = Field(default=60, ge=10, le=400)
    min_words: int = Field(default=40, ge=0, le=1000)
    #: Say in the email when a summary was machine-written by an LLM.
    mark_machine_written: bool = True
    llm: LLMSection = Field(default_factory=LLMSection)
