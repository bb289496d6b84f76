"""The ``[filters]`` section: a global block list applied before the topics (words, sources,
URL patterns), as readers of rss2email and Miniflux expect."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field

from digest.config.base import _Section

#: Same bounds as ``topics.rules`` (entries, characters per entry): a short list an editor reads.
MAX_RULES = 1000
MAX_RULE_CHARS = 500


def rule_list(v: Any) -> Any:
    """A bounded list of non-empty strings (block lists, a feed's include/exclude)."""
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise ValueError("expected a list of strings")
    if len(v) > MAX_RULES:
        raise ValueError(f"{len(v)} entries, at most {MAX_RULES}")
    for i, x in enumerate(v):
        if not x.strip():
            raise ValueError(f"entry {i} is empty")
        if len(x) > MAX_RULE_CHARS:
            raise ValueError(f"entry {i} is longer than {MAX_RULE_CHARS} characters")
    return v


def block_list(v: Any) -> Any:
    """``rule_list`` and the prefixes: ``source:`` and ``url:`` need something after them."""
    rule_list(v)
    for i, x in enumerate(v):
        for prefix in ("source:", "url:", "url:regex:"):
            if x.strip() == prefix:
                raise ValueError(f"entry {i} ({x!r}) needs something after {prefix!r}")
    return v


class FiltersSection(_Section):
    #: Items dropped before any topic sees them: a word or phrase (the topics' term syntax,
    #: ``regex:`` under RE2 included), ``source:NAME`` (the source name shown, feed URL or host) or
    #: ``url:GLOB`` / ``url:regex:PATTERN`` on the item's link.
    block: Annotated[list[str], BeforeValidator(block_list)] = Field(default_factory=list)
