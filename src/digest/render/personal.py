"""Per-reader finishing of a rendered issue: fill the placeholders, cheaply, a million times.

``RenderCache`` keeps one compiled ``RenderedIssue`` per (issue, language, topic set).
"""

from __future__ import annotations

import html
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from functools import lru_cache

from digest.errors import RenderError
from digest.models import Brand, IssueContent, RenderedIssue

from .core import render_issue, select_sections
from .i18n import message, resolve_language

__all__ = ["RenderCache", "forget_templates", "personalize"]

_TOKEN = re.compile(r"\{\{\{([#/]?)(greeting|unsubscribe_url|preferences_url|email)\}\}\}")
_URL_SCHEMES = ("https://", "http://", "mailto:")
_BAD_URL_CHAR = re.compile(r"[\s\x00-\x1f\x7f<>\"]")
_SPACES = re.compile(r"\s+")
_INVALID_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffe\uffff]")


@lru_cache(maxsize=128)
def _split(template: str) -> tuple[str, ...]:
    # [literal, flag, name, literal, flag, name, ..., literal]. Cached on the string itself:
    # CPython keeps a str's hash, so a hit for the same RenderedIssue costs one dict lookup.
    return tuple(_TOKEN.split(template))


def forget_templates() -> None:
    """Drop the split templates: they belong to one issue (~100 KB each, a few per issue).

    Kept until 128 had piled up, a daemon sending often held megabytes of past issues, more
    with every send.
    """
    _split.cache_clear()


def _fill(parts: tuple[str, ...], values: Mapping[str, str | None]) -> str:
    out = [parts[0]]
    skip = False  # inside {{{#name}}}...{{{/name}}} whose value is None
    for i in range(1, len(parts), 3):
        flag, name = parts[i], parts[i + 1]
        if flag == "#":
            skip = values[name] is None
        elif flag == "/":
            skip = False
        elif not skip:
            out.append(values[name] or "")
        if not skip:
            out.append(parts[i + 2])
    return "".join(out)


def _check_url(what: str, url: str) -> None:
    if not url.lower().startswith(_URL_SCHEMES) or _BAD_URL_CHAR.search(url):
        raise RenderError(f"{what} must be an absolute https, http or mailto URL without spaces")


def personalize(
    rendered: RenderedIssue,
    *,
    name: str | None,
    unsubscribe_url: str,
    preferences_url: str | None,
    email: str | None = None,
) -> tuple[str, str]:
    """(html, text) for one reader: greeting, unsubscribe and preferences links filled in.

    A string substitution over the compiled issue (values HTML-escaped in the HTML part); the
    preferences link disappears when ``preferences_url`` is None, the footer's "sent to" line
    when ``email`` is.
    """
    _check_url("unsubscribe_url", unsubscribe_url)
    if preferences_url is not None:
        _check_url("preferences_url", preferences_url)
    clean = _SPACES.sub(" ", _INVALID_CHARS.sub("", name)).strip() if name else ""
    greeting = (
        message(rendered.language, "greeting_named", name=clean)
        if clean
        else message(rendered.language, "greeting")
    )
    text_values = {
        "greeting": greeting,
        "unsubscribe_url": unsubscribe_url,
        "preferences_url": preferences_url,
        "email": _clean_address(email),
    }
    html_values = {
        "greeting": html.escape(greeting),
        "unsubscribe_url": html.escape(unsubscribe_url),
        "preferences_url": None if preferences_url is None else html.escape(preferences_url),
        "email": None if email is None else html.escape(_clean_address(email) or ""),
    }
    return _fill(_split(rendered.html), html_values), _fill(_split(rendered.text), text_values)


def _clean_address(email: str | None) -> str | None:
    if email is None:
        return None
    return _SPACES.sub(" ", _INVALID_CHARS.sub("", email)).strip()


class RenderCache:
    """Compile each (issue number, language, topic set) once; thread-safe, bounded LRU.

    Topic sets are normalized to the sections they select, so {"a", "gone"} and {"a"} share
    one entry. The issue number is the key: give each cache one version of each issue.
    """

    def __init__(
        self,
        *,
        subject_format: str = "{title} #{number} — {date}",
        mark_machine_written: bool = True,
        brand: Brand | None = None,
        templates: str | None = None,
        maxsize: int = 64,
    ) -> None:
        self.subject_format = subject_format
        self.mark_machine_written = mark_machine_written
        self.brand = brand
        self.templates = templates
        self.maxsize = maxsize
        self.hits = 0
        self.misses = 0
        self._items: OrderedDict[tuple[int, str, tuple[str, ...]], RenderedIssue] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def get(
        self,
        content: IssueContent,
        *,
        language: str | None = None,
        topics: Sequence[str] | None = None,
    ) -> RenderedIssue:
        """The compiled issue for this variant (RenderError when the subset is empty)."""
        lang = resolve_language(language or content.language)
        selected = tuple(s.topic_id for s in select_sections(content, topics))
        key = (content.number, lang, selected)
        # Held while compiling so two threads wanting one variant compile it once.
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self.hits += 1
                self._items.move_to_end(key)
                return found
            self.misses += 1
            rendered = render_issue(
                content,
                subject_format=self.subject_format,
                language=lang,
                topics=None if topics is None else selected,
                mark_machine_written=self.mark_machine_written,
                brand=self.brand,
                templates=self.templates,
            )
            self._items[key] = rendered
            if len(self._items) > self.maxsize:
                self._items.popitem(last=False)
            return rendered
