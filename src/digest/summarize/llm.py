"""LLM summaries through an OpenAI-compatible ``/chat/completions`` endpoint: one or two
sentences in the item's language, cached per (content hash, model), falling back on any failure.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from digest.errors import SummarizeError
from digest.models import Summary
from digest.summarize import clean
from digest.summarize.deadline import DeadlineClient
from digest.summarize.extractive import count_words
from digest.summarize.language import detect, quick_en_fr

log = logging.getLogger(__name__)

#: Articles are long; the gist is in the first part and tokens cost money.
MAX_INPUT_CHARS = 12_000
#: A chat completion of two sentences is a few kilobytes; more is not an answer.
MAX_ANSWER_BYTES = 1_000_000
#: The ``llm_cache.key`` column is 128 characters.
MAX_KEY_CHARS = 128

LANGUAGE_NAMES = {
    "en": "English", "fr": "French", "de": "German", "es": "Spanish", "it": "Italian",
    "pt": "Portuguese", "nl": "Dutch", "ru": "Russian", "uk": "Ukrainian", "pl": "Polish",
    "ar": "Arabic", "ur": "Urdu", "fa": "Persian", "he": "Hebrew", "zh": "Chinese",
    "ja": "Japanese", "ko": "Korean", "sk": "Slovak", "cs": "Czech", "el": "Greek",
}  # fmt: skip


class SummaryCache(Protocol):
    """Where LLM answers are kept (the pipeline implements it on the ``llm_cache`` table)."""

    def get(self, key: str) -> str | None: ...

    def put(self, key: str, value: str) -> None: ...


class _Fallback(Protocol):
    name: str

    def summarize(self, title: str, html: str, *, language: str | None = None) -> Summary: ...


@dataclass(frozen=True, slots=True)
class LLMOptions:
    """How to reach the model; ``api_key`` is the secret itself, read from the environment by
    the caller (config names the variable, never the key)."""

    base_url: str
    model: str
    api_key: str | None = None
    timeout: float = 30.0
    max_words: int = 80


def cache_key(model: str, language: str, max_words: int, title: str, text: str) -> str:
    """``<sha256 of what was asked>:<model>``; a change of text, language or budget asks again."""
    digest = hashlib.sha256(
        "\x1f".join((language, str(max_words), title, text)).encode("utf-8", "surrogatepass")
    ).hexdigest()
    key = f"{digest}:{model}"
    if len(key) > MAX_KEY_CHARS:
        key = f"{digest}:{hashlib.sha256(model.encode()).hexdigest()[:32]}"
    return key


def build_messages(title: str, text: str, language: str, max_words: int) -> list[dict[str, str]]:
    lang = LANGUAGE_NAMES.get(language, language)
    system = (
        "You write the summaries of a newsletter digest. Summarize the article in one or two "
        f"sentences, in {lang}, at most {max_words} words. State the facts plainly; no "
        "preamble, no opinion, no markdown, no quotation marks around the answer."
    )
    user = f"Title: {title}\n\n{text[:MAX_INPUT_CHARS]}"
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


_WRAPPERS = re.compile(r"^[\s\"'“”«»*`]+|[\s\"'“”«»*`]+$")
_PREAMBLE = re.compile(r"^(summary|résumé)\s*:\s*", re.IGNORECASE)


def _answer_text(payload: Any) -> str:
    try:
        content = payload["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError) as exc:
        raise SummarizeError("answer is not a chat completion (no choices[0].message)") from exc
    if not isinstance(content, str):
        raise SummarizeError("answer content is not text")
    text = " ".join(_PREAMBLE.sub("", _WRAPPERS.sub("", content)).split())
    if not text:
        raise SummarizeError("empty answer")
    return text


def _down(reason: str) -> SummarizeError:
    """The endpoint itself failed (not this one answer): the run stops asking it."""
    exc = SummarizeError(reason)
    exc.endpoint_down = True
    return exc


class LLMSummarizer:
    """Asks the model once per distinct content; anything wrong -> ``fallback``'s summary."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None,
        timeout: float,
        max_words: int,
        cache: SummaryCache | None,
        fallback: _Fallback,
    ) -> None:
        self.name = f"llm:{model}"
        self.model = model
        self.max_words = max_words
        self.cache = cache
        self.fallback = fallback
        self._url = base_url.rstrip("/") + "/chat/completions"
        headers = {"User-Agent": "digest (+https://github.com/digest-newsletter/digest)"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        # ``timeout`` bounds the whole request: a trickling endpoint cannot hold the run.
        self._client = DeadlineClient(timeout, headers, MAX_ANSWER_BYTES)
        #: Why the endpoint is no longer asked in this run (None: it still is).
        self.broken: str | None = None

    def close(self) -> None:
        self._client.close()

    def summarize(self, title: str, html: str, *, language: str | None = None) -> Summary:
        text = clean.to_text(html, title=title)
        lang = detect(text or title, language)
        if not text:
            return self.fallback.summarize(title, html, language=lang)
        key = cache_key(self.model, lang, self.max_words, title, text)
        cached = self._cache_get(key)
        if cached is not None:
            return Summary(text=cached, language=lang, engine=self.name, source_text=text)
        if self.broken is not None:
            return self.fallback.summarize(title, html, language=lang)
        try:
            answer = self._ask(title, text, lang)
        except SummarizeError as exc:
            if exc.endpoint_down:
                # Circuit breaker: a hung or failing endpoint would cost its timeout once per
                # item; it is not asked again in this run, and that is said once.
                self.broken = str(exc)
                log.warning(
                    "LLM endpoint failed (%s): the rest of this run uses %s summaries",
                    exc,
                    self.fallback.name,
                )
            else:
                log.warning("LLM summary failed, using %s instead: %s", self.fallback.name, exc)
            return self.fallback.summarize(title, html, language=lang)
        self._cache_put(key, answer)
        return Summary(text=answer, language=lang, engine=self.name, source_text=text)

    def _ask(self, title: str, text: str, language: str) -> str:
        body = {
            "model": self.model,
            "messages": build_messages(title, text, language, self.max_words),
            "temperature": 0.2,
        }
        try:
            status, content = self._client.post_json(self._url, body)
        except httpx.TimeoutException as exc:
            raise _down(f"{self._url}: timed out") from exc
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise _down(f"{self._url}: {type(exc).__name__}: {exc}") from exc
        if status != 200:
            raise _down(f"{self._url}: HTTP {status}")
        try:
            payload = json.loads(content)
        except ValueError as exc:
            raise _down(f"{self._url}: answer is not JSON") from exc
        answer = _answer_text(payload)
        words = count_words(answer)
        if words > self.max_words:
            raise SummarizeError(f"answer too long ({words} words > {self.max_words})")
        # A summary in the wrong language loses the reader: models do drift to English.
        seen = quick_en_fr(answer, min_hits=2) if language in {"en", "fr"} else None
        if seen is not None and seen != language:
            raise SummarizeError(f"answer in {seen!r}, the item is in {language!r}")
        return answer

    def _cache_get(self, key: str) -> str | None:
        if self.cache is None:
            return None
        try:
            return self.cache.get(key)
        except Exception as exc:  # the cache is an optimization: never lose a summary to it
            log.warning("LLM cache read failed: %s", exc)
            return None

    def _cache_put(self, key: str, value: str) -> None:
        if self.cache is None:
            return
        try:
            self.cache.put(key, value)
        except Exception as exc:  # as above
            log.warning("LLM cache write failed: %s", exc)
