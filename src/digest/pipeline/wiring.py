"""Stages built from ``Settings`` in one place: fetch options, summarizers, senders, the DKIM
signer, the topic matcher and the rules read before it. The pipeline, the CLI and the web
front call these.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from digest.config import Settings
from digest.errors import ConfigError
from digest.models import TopicDef

if TYPE_CHECKING:
    from digest.pipeline.relevance import Decider
    from digest.reader.fetch import FetchOptions
    from digest.send import DKIMSigner, Sender
    from digest.summarize import LLMOptions, Summarizer, SummaryCache
    from digest.topics import TopicMatcher
    from digest.topics.rules import KeepRules

# The stages are imported inside the functions: `digest fetch` starts without the summarizers
# and the senders, and the topic matcher is compiled only when a body changed.

#: First retry delay after a 4xx or a dropped connection (doubles per attempt, with jitter).
RETRY_BASE = 5.0
#: Words per summary when there is no configuration (`digest summarize` on its own).
DEFAULT_MAX_WORDS = 60


def fetch_options(settings: Settings) -> FetchOptions:
    """``[fetch]`` as the fetch stage's options."""
    from digest.reader.fetch import FetchOptions

    f = settings.fetch
    return FetchOptions(
        concurrency=f.concurrency, per_host=f.per_host, timeout=f.timeout, max_bytes=f.max_bytes
    )


def llm_options(settings: Settings) -> LLMOptions:
    """``[summary.llm]`` as the LLM engine's options; the API key read from the environment."""
    from digest.summarize import LLMOptions

    llm = settings.summary.llm
    return LLMOptions(
        base_url=llm.base_url,
        model=llm.model,
        # The config names the variable; the key itself only ever lives in the environment.
        api_key=os.environ.get(llm.api_key_env) if llm.api_key_env else None,
        timeout=llm.timeout,
        max_words=llm.max_words,
    )


def make_summarizer(
    settings: Settings | None, *, engine: str | None = None, cache: SummaryCache | None = None
) -> Summarizer:
    """The summarizer for ``engine`` (default ``[summary] engine``); "llm" falls back to an
    extractive summarizer with the same ``max_words`` and caches its answers in ``cache``."""
    from digest.summarize import ENGINES, ExtractiveSummarizer, LLMSummarizer

    max_words = settings.summary.max_words if settings else DEFAULT_MAX_WORDS
    engine = engine or (settings.summary.engine if settings else "extractive")
    extractive = ExtractiveSummarizer(max_words=max_words)
    if engine == "extractive":
        return extractive
    if engine == "llm":
        if settings is None:
            raise ConfigError("summary.engine = 'llm' needs the [summary.llm] settings")
        llm = llm_options(settings)
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


def make_sender(
    settings: Settings, *, retry_base: float = RETRY_BASE, outbox_folder: str | None = None
) -> Sender:
    """The configured sender: outbox files (in ``outbox_folder`` instead of one folder per
    issue, if given) or SMTP (its password read from the environment)."""
    from digest.send import OutboxSender, SMTPOptions, SMTPSender

    if settings.delivery.mode == "outbox":
        return OutboxSender(settings.delivery.outbox_dir, folder=outbox_folder)
    s = settings.smtp
    password = s.password()
    if s.username and not password:
        raise ConfigError(f"smtp.password_env: ${s.password_env} is not set (smtp.username is)")
    return SMTPSender(
        SMTPOptions(
            host=s.host,
            port=s.port,
            security=s.security,
            username=s.username,
            password=password,
            timeout=s.timeout,
            connections=s.connections,
            rate_per_second=s.rate_per_second,
            max_attempts=s.max_attempts,
            ca_file=s.ca_file,
            backoff_base=retry_base,
        )
    )


def make_signer(settings: Settings) -> DKIMSigner | None:
    """The DKIM signer for ``[dkim]``, or None when messages go unsigned."""
    if settings.dkim is None:
        return None
    from digest.send import DKIMSigner, load_key

    k = settings.dkim
    return DKIMSigner(k.selector, k.domain, load_key(k.key_file, k.key_env))


def _compile(defs: Sequence[TopicDef], settings: Settings | None = None) -> TopicMatcher:
    """A matcher for ``defs``; with ``settings``, its terms' word forms are read from and added
    to the cache in ``[storage] cache_dir`` (without it, compiling loads simplemma's French and
    English dictionaries: about 0.4 s of CPU in every process)."""
    from pathlib import Path

    from digest.pipeline import wordforms
    from digest.topics import TopicMatcher

    folder = Path(settings.storage.cache_dir) if settings is not None else None
    if folder is not None:
        wordforms.load(folder)
    matcher = TopicMatcher(defs)
    if folder is not None:
        wordforms.save(folder)
    return matcher


def make_matcher(settings: Settings | Sequence[TopicDef]) -> TopicMatcher:
    """The topic matcher for ``[topics.*]``, or for the given topic definitions (``digest
    topics suggest`` trying edits to one topic)."""
    if isinstance(settings, Settings):
        return _compile(settings.topic_defs(), settings)
    return _compile(settings)


def make_rules(settings: Settings) -> KeepRules:
    """``[filters] block`` and the feeds' ``include``/``exclude``; ``ConfigError`` naming the
    entry when a pattern cannot be used (RE2)."""
    from digest.topics.rules import KeepRules, rule_topics

    feeds = settings.feed_specs()
    defs = rule_topics(settings.filters.block, feeds)
    return KeepRules(settings.filters.block, feeds, _compile(defs, settings) if defs else None)


def make_decider(settings: Settings) -> Decider:
    """The topic matcher with the rules read before it and the readers' languages."""
    from functools import partial

    from digest.pipeline.learning import decide_with_model
    from digest.pipeline.relevance import Decider

    # The model itself is loaded on the first batch with an item a "keep" topic dropped.
    keep = any(t.learned == "keep" for t in settings.topics.values())
    learned = partial(decide_with_model, settings) if keep else None
    return Decider(
        make_matcher(settings),
        make_rules(settings),
        frozenset(settings.digest.languages),
        learned,
    )
