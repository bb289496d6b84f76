"""What is read and how it is sorted: ``[[feeds]]``, ``[topics.*]`` and ``[fetch]``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator

from digest.config.base import _Section
from digest.config.filters import rule_list
from digest.models import FeedSpec, Term, TopicDef, TopicExample
from digest.urls import feed_url_problem


class FeedSection(_Section):
    url: str = Field(min_length=1)

    @field_validator("url")
    @classmethod
    def _readable_feed_url(cls, v: str) -> str:
        # The rule of `digest feeds import`, so check refuses what import refuses; a local path
        # written here by the operator (or imported with --allow-local) stays allowed.
        problem = feed_url_problem(v, allow_local=True)
        if problem is not None:
            raise ValueError(f"{v[:200]!r} cannot be a feed: {problem}")
        return v.strip()

    name: str | None = None
    topics: list[str] = Field(default_factory=list)
    always: list[str] = Field(default_factory=list)
    full_text: bool = False
    allow_private: bool = False
    #: Folders or categories from an OPML import that name no topic.
    labels: list[str] = Field(default_factory=list)
    #: Keep rule: only items mentioning one of these terms are considered (then the topics).
    include: Annotated[list[str], BeforeValidator(rule_list)] = Field(default_factory=list)
    #: Block rule: items mentioning one of these terms are dropped.
    exclude: Annotated[list[str], BeforeValidator(rule_list)] = Field(default_factory=list)

    def to_model(self) -> FeedSpec:
        return FeedSpec(
            url=self.url,
            name=self.name,
            topics=tuple(self.topics),
            always=tuple(self.always),
            full_text=self.full_text,
            allow_private=self.allow_private,
            labels=tuple(self.labels),
            include=tuple(self.include),
            exclude=tuple(self.exclude),
        )


class TermEntry(_Section):
    term: str = Field(min_length=1)
    weight: float = 1.0


class ExampleEntry(_Section):
    title: str
    text: str = ""
    expect: bool


def _list_of_strings(v: Any) -> Any:
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise ValueError("expected a list of strings")
    return v


def _include_list(v: Any) -> Any:
    ok = isinstance(v, list) and all(isinstance(x, str | dict) for x in v)
    if not ok:
        raise ValueError("expected a list of strings (or {term, weight} tables)")
    return v


def _require_groups(v: Any) -> Any:
    if not isinstance(v, list) or not all(
        isinstance(g, list) and all(isinstance(x, str) for x in g) for g in v
    ):
        raise ValueError("expected a list of lists of strings")
    return v


class TopicSection(_Section):
    title: str
    titles: dict[str, str] = Field(default_factory=dict)
    include: Annotated[list[str | TermEntry], BeforeValidator(_include_list)]
    exclude: Annotated[list[str], BeforeValidator(_list_of_strings)] = Field(default_factory=list)
    require: Annotated[list[list[str]], BeforeValidator(_require_groups)] = Field(
        default_factory=list
    )
    title_weight: float = Field(default=2.0, ge=0)
    threshold: float = Field(default=1.0, ge=0)
    examples: list[ExampleEntry] = Field(default_factory=list)
    #: The learned scorer's part: "off", "suggest" (near misses for the editors) or "keep".
    learned: Literal["off", "suggest", "keep"] = "suggest"
    learned_floor: float = Field(default=0.9, ge=0, le=1)
    #: "keep" keeps only items mentioning at least one include term.
    learned_needs_term: bool = False

    def to_model(self, topic_id: str) -> TopicDef:
        return TopicDef(
            id=topic_id,
            title=self.title,
            include=tuple(
                Term(t, 1.0) if isinstance(t, str) else Term(t.term, t.weight) for t in self.include
            ),
            exclude=tuple(self.exclude),
            require=tuple(tuple(g) for g in self.require),
            title_weight=self.title_weight,
            threshold=self.threshold,
            examples=tuple(TopicExample(e.title, e.text, e.expect) for e in self.examples),
            titles=tuple(sorted(self.titles.items())),
            learned=self.learned,
            learned_floor=self.learned_floor,
            learned_needs_term=self.learned_needs_term,
        )


class FetchSection(_Section):
    #: Feeds downloaded at once; ``per_host`` of them at most from one site.
    concurrency: int = Field(default=100, ge=1, le=1000)
    per_host: int = Field(default=8, ge=1, le=1000)
    timeout: float = Field(default=20.0, gt=0)
    max_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    #: Every feed (and article page) may be on private or loopback addresses: for a digest that
    #: only reads an intranet. Off by default; one feed can say so with its own allow_private.
    allow_private: bool = False
    #: Newest items stored per feed and fetch; a feed's older (or flooding) items are counted,
    #: not stored: one feed of 20,000 entries cannot swamp the store or an issue.
    max_items_per_feed: int = Field(default=200, ge=1, le=100_000)
    #: Article pages fetched per run to decide teaser items of ``full_text`` feeds on the
    #: article rather than the teaser (0: decide on the teaser only).
    full_text_decisions: int = Field(default=30, ge=0, le=10_000)
    #: Fraction of a topic's threshold a teaser must score for its article to be fetched before
    #: the decision (0: every teaser of a full-text feed, up to ``full_text_decisions``).
    full_text_floor: float = Field(default=0.25, ge=0, le=1)
    #: Parsing processes; 0 means one per core.
    parse_workers: int = Field(default=0, ge=0, le=64)
