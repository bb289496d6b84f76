"""Feed bytes -> ParsedFeed: feedparser, then typed, sanitized items (dates in UTC, absolute URLs).

``parse_many`` spreads the CPU-heavy feedparser work over a process pool.
"""

from __future__ import annotations

import calendar
import hashlib
import html
import io
import logging
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any, cast
from urllib.parse import urljoin, urlsplit
from xml.sax.expatreader import ExpatParser

from digest.errors import ParseError
from digest.models import Item, ParsedFeed
from digest.sanitize import defang_identifier, plain_text, sanitize_html
from digest.urls import InvalidURL, canonical_url, web_url

__all__ = ["ParseJob", "ParsePool", "feedparser_module", "parse_feed", "parse_many"]

log = logging.getLogger(__name__)

UNTITLED = "(untitled)"
#: A date further ahead than this is a publisher's mistake: the item gets its first-seen time.
FUTURE_SLACK = timedelta(days=1)
#: Below this many jobs a process pool costs more than it saves.
POOL_THRESHOLD = 3

MAX_LANGUAGE_CHARS = 16
_LANG = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{1,8})*$")


# --------------------------------------------------------------------------- SAX driver


class _BufferedExpatReader(ExpatParser):
    """Python's expat SAX reader with expat's own text buffering on.

    Without it, expat hands text over in pieces split at every entity: an escaped-HTML
    description ("&lt;p&gt;...") costs feedparser dozens of Python callbacks per item. With it,
    the same text arrives in one call: a sixth of a feed's parse time, identical results.
    """

    def reset(self) -> None:
        super().reset()
        expat = cast(Any, self)._parser  # the pyexpat parser reset() just made (not in the stubs)
        expat.buffer_size = 1 << 16
        expat.buffer_text = True


def create_parser() -> ExpatParser:
    """SAX driver entry point: ``xml.sax.make_parser`` imports this module by name and calls it."""
    return _BufferedExpatReader()


@cache
def feedparser_module() -> Any:
    """feedparser, imported on the first body to parse (a cycle where every feed answered 304
    never pays for it), with this module's buffered expat reader as its SAX driver."""
    import feedparser
    import feedparser.api

    # feedparser asks xml.sax for the first driver of this list that imports (the default,
    # libxml2's, is seldom installed); an import failure here would fall back to the standard
    # expat reader.
    feedparser.api.PREFERRED_XML_PARSERS = [__name__]
    return feedparser


# --------------------------------------------------------------------------- one feed


def parse_feed(
    content: bytes,
    *,
    url: str,
    fetched_at: datetime,
    content_type: str | None = None,
    max_items: int | None = None,
) -> ParsedFeed:
    """Parse one feed document; raises ParseError when the bytes are not a feed.

    ``max_items``: only the newest that many entries become items (the rest are counted in
    ``ParsedFeed.over_cap``): a feed of 20,000 entries costs no 20,000 sanitized items.
    """
    if fetched_at.tzinfo is None:
        fetched_at = fetched_at.replace(tzinfo=UTC)
    fetched_at = fetched_at.astimezone(UTC)
    try:
        return _parse(
            content, url=url, fetched_at=fetched_at, content_type=content_type, cap=max_items
        )
    except ParseError:
        raise
    except Exception as exc:
        # feedparser and the codecs it tries can fail in many ways on hostile bytes.
        raise ParseError(url, f"unreadable feed ({type(exc).__name__}: {exc})"[:300]) from exc


def _parse(
    content: bytes, *, url: str, fetched_at: datetime, content_type: str | None, cap: int | None
) -> ParsedFeed:
    if not content or not content.strip():
        raise ParseError(url, "not a feed: empty document")
    headers: dict[str, str] = {}
    if content_type:
        headers["content-type"] = content_type
    # No Content-Location on purpose: feedparser would then resolve plain guids ("12345") into
    # URLs. It still applies xml:base to links; links left relative are resolved in _item.
    # Embedded HTML is sanitized and its URLs resolved (against the xml:base feedparser records
    # on each content) by one nh3 pass in sanitize_html: that pass is stricter than feedparser's
    # sanitizer, and doing both in Python's sgmllib doubled the CPU cost of a feed.
    # A file-like object: given bytes, feedparser would first try them as a path to open.
    doc = feedparser_module().parse(
        io.BytesIO(content),
        response_headers=headers,
        resolve_relative_uris=False,
        sanitize_html=False,
    )
    if not doc.get("version") and not doc.entries:
        reason = "not a feed: no RSS or Atom document found"
        if doc.get("bozo_exception") is not None:
            reason += f" ({_one_line(str(doc.bozo_exception))})"
        raise ParseError(url, reason[:300])
    meta = doc.get("feed", {})
    try:
        feed_link = _absolute_link(meta.get("link"), url if _is_web_url(url) else "")
    except InvalidURL:
        feed_link = None  # the site's own link is only a base for relative item links
    feed_language = _language(meta.get("language")) or _language(
        (doc.get("headers") or {}).get("content-language")
    )
    items: list[Item] = []
    seen: set[str] = set()
    entries = doc.entries
    over_cap = 0
    if cap is not None and len(entries) > cap:
        # Newest first by the entry's own date (undated ones count as newest: first seen now).
        ranked = sorted(entries, key=lambda e: _entry_stamp(e, fetched_at), reverse=True)
        entries, over_cap = ranked[:cap], len(entries) - cap
    for entry in entries:
        try:
            item = _item(entry, url, feed_link, feed_language, fetched_at)
        except Exception:  # one odd entry must not cost the feed its other items
            log.warning("skipped an unreadable entry in %s", url, exc_info=True)
            continue
        if item.guid in seen:  # a guid repeated in one document is one item
            continue
        seen.add(item.guid)
        items.append(item)
    warning = None
    if doc.get("bozo") and doc.get("bozo_exception") is not None:
        exc = doc["bozo_exception"]
        warning = _one_line(f"{type(exc).__name__}: {exc}")[:300]
    title = plain_text(meta.get("title") or "") or None
    return ParsedFeed(
        url=url,
        title=title,
        link=feed_link,
        language=feed_language,
        items=tuple(items),
        warning=warning,
        ttl=_ttl(meta.get("ttl")),
        over_cap=over_cap,
    )


def _entry_stamp(entry: Mapping[str, Any], fetched_at: datetime) -> float:
    try:
        return _published(entry, fetched_at)[0].timestamp()
    except Exception:  # a date that cannot even be compared: as if undated
        return fetched_at.timestamp()


def _ttl(value: Any) -> float | None:
    """RSS ``<ttl>`` (minutes) in seconds; absent, junk or absurd values give None."""
    text = _text(value).strip()
    if not text.isdigit() or not 0 < int(text) <= 60 * 24 * 30:
        return None
    return int(text) * 60.0


def _item(
    entry: Mapping[str, Any],
    feed_url: str,
    feed_link: str | None,
    feed_language: str | None,
    fetched_at: datetime,
) -> Item:
    # Relative references resolve against the document's own URL (RFC 3986), else its site.
    base = feed_url if _is_web_url(feed_url) else (feed_link or "")
    entry_link = _raw(entry, "link")
    if _raw(entry, "guidislink") and not _is_web_url(_text(entry_link)):
        entry_link = None  # an RSS guid like "12345" is not a permalink, whatever the spec says
    # FeedBurner and Pheedo wrap links in click trackers; origLink is the article itself.
    candidates = [_raw(entry, "feedburner_origlink"), _raw(entry, "pheedo_origlink"), entry_link]
    candidates += [
        x.get("href")
        for x in _raw(entry, "links") or ()
        if isinstance(x, Mapping) and x.get("rel", "alternate") == "alternate"
    ]
    link: str | None = None
    problem: str | None = None
    for candidate in candidates:
        try:
            link = _absolute_link(candidate, base)
        except InvalidURL as exc:
            problem = problem or f"invalid link: {exc.reason} ({exc.url[:200]!r})"
            continue
        if link:
            break
    if link:
        problem = None  # a later alternate link is good: the item is usable
    title = plain_text(_text(_raw(entry, "title"))) or UNTITLED
    published, dated = _published(entry, fetched_at)
    guid = _text(_raw(entry, "id")).strip() or link or _hash_guid(entry, title)
    fallback_base = link or base
    contents = [c for c in _raw(entry, "content") or () if isinstance(c, Mapping)]
    longest = max(contents, key=lambda c: len(_text(c.get("value"))), default=None)
    content_html = _detail_html(longest, fallback_base)
    summary_html = _detail_html(_raw(entry, "summary_detail"), fallback_base)
    if not summary_html and "summary_detail" not in entry:
        summary_html = sanitize_html(_text(_raw(entry, "summary")), fallback_base)
    if summary_html == content_html:
        summary_html = ""  # feedparser copies Atom content into summary; keep one copy
    author = plain_text(_text(_raw(entry, "author"))) or None
    language = _entry_language(entry) or feed_language
    if link:
        canon = canonical_url(link)
    else:
        # No link at all: an identity that is stable and unique to this feed's entry.
        digest = hashlib.sha256(f"{feed_url}\0{guid}".encode("utf-8", "surrogatepass"))
        canon = f"urn:digest:{digest.hexdigest()[:32]}"
    return Item(
        feed_url=feed_url,
        guid=defang_identifier(guid)[:1000],
        url=defang_identifier(link or feed_link or ""),
        canonical_url=defang_identifier(canon),
        title=title,
        published=published,
        author=author[:200] if author else None,
        content_html=content_html,
        summary_html=summary_html,
        language=language,
        dated=dated,
        problem=problem,
    )


def _detail_html(detail: Any, fallback_base: str) -> str:
    """Sanitized HTML of one feedparser text construct, its URLs resolved against its
    xml:base (when that is a web URL) or else the entry's link."""
    if not isinstance(detail, Mapping):
        return ""
    value = _text(detail.get("value"))
    if detail.get("type") == "text/plain":
        value = html.escape(value, quote=False)
    xml_base = _text(detail.get("base"))
    return sanitize_html(value, xml_base if _is_web_url(xml_base) else fallback_base)


def _published(entry: Mapping[str, Any], fetched_at: datetime) -> tuple[datetime, bool]:
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        parsed = _raw(entry, key)
        if not isinstance(parsed, time.struct_time | tuple) or len(parsed) < 6:
            continue
        try:
            # struct_time from feedparser is UTC; timegm avoids the local timezone entirely.
            stamp = calendar.timegm((*tuple(parsed)[:5], min(int(parsed[5]), 59), 0, 0, 0))
            when = datetime.fromtimestamp(stamp, UTC)
        except (ValueError, OverflowError, OSError, TypeError):
            continue
        if when > fetched_at + FUTURE_SLACK:
            return fetched_at, False
        return when, True
    return fetched_at, False


def _raw(entry: Mapping[str, Any], key: str) -> Any:
    """entry[key] without FeedParserDict's aliasing, which maps a missing ``updated*`` to
    ``published*`` with a DeprecationWarning: we ask for each date key ourselves."""
    # Also much faster: FeedParserDict.get goes through __getitem__'s alias table each time.
    return dict.get(entry, key) if isinstance(entry, dict) else entry.get(key)


def _hash_guid(entry: Mapping[str, Any], title: str) -> str:
    date = _text(_raw(entry, "published") or _raw(entry, "updated"))
    basis = f"{title}\0{date}"
    if title == UNTITLED and not date:
        basis += "\0" + _text(entry.get("summary"))
    return "sha256:" + hashlib.sha256(basis.encode("utf-8", "surrogatepass")).hexdigest()[:40]


def _entry_language(entry: Mapping[str, Any]) -> str | None:
    details: list[Any] = [*entry.get("content", ()), entry.get("title_detail")]
    details.append(entry.get("summary_detail"))
    for detail in details:
        if isinstance(detail, Mapping):
            lang = _language(detail.get("language"))
            if lang:
                return lang
    return _language(entry.get("language"))


def _language(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    lang = value.strip().lower().replace("_", "-")
    if not _LANG.match(lang):
        return None
    # A tag longer than the column (16) keeps its primary language: "en" of an "en-x-...".
    return lang if len(lang) <= MAX_LANGUAGE_CHARS else lang.split("-", 1)[0]


def _absolute_link(value: Any, base: str) -> str | None:
    """An absolute http(s) URL from a possibly relative link, or None when it is not a web
    link at all ("mailto:", a bare guid); raises ``InvalidURL`` for an http(s) link no client
    could request ("http://1.2.3.04/a")."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        absolute = urljoin(base, value.strip()) if base else value.strip()
        parts = urlsplit(absolute)
    except ValueError as exc:
        raise InvalidURL(value.strip(), str(exc) or "unreadable") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return web_url(absolute)


def _is_web_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.netloc)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _one_line(text: str) -> str:
    return " ".join(text.split())


# --------------------------------------------------------------------------- many feeds


@dataclass(frozen=True, slots=True)
class ParseJob:
    """One document to parse in ``parse_many`` or a ``ParsePool``."""

    content: bytes
    url: str
    fetched_at: datetime
    content_type: str | None = None
    max_items: int | None = None


def _run_job(job: ParseJob) -> ParsedFeed | tuple[str, str]:
    """Worker side: ParseError does not pickle (its __init__ takes two arguments): send a tuple."""
    try:
        return parse_feed(
            job.content,
            url=job.url,
            fetched_at=job.fetched_at,
            content_type=job.content_type,
            max_items=job.max_items,
        )
    except ParseError as exc:
        return (exc.url, exc.reason)


def _revive(outcome: ParsedFeed | tuple[str, str]) -> ParsedFeed | ParseError:
    return ParseError(*outcome) if isinstance(outcome, tuple) else outcome


def _ready() -> bool:
    return True


class ParsePool:
    """Parse documents as they arrive (e.g. from ``fetch_all``'s ``on_result``), in order.

    Enter it *before* fetching: the worker processes are forked on entry, while the process has
    no other threads yet (a fork copies locks held by other threads into the child). With one
    worker, or when processes cannot start, ``submit`` parses inline.
    """

    def __init__(self, workers: int = 0) -> None:
        self.workers = workers or os.cpu_count() or 1
        self._pool: ProcessPoolExecutor | None = None
        self._jobs: list[ParseJob | None] = []
        self._pending: list[
            Future[ParsedFeed | tuple[str, str]] | ParsedFeed | ParseError | None
        ] = []

    def __enter__(self) -> ParsePool:
        if self.workers > 1:
            try:
                self._pool = ProcessPoolExecutor(max_workers=self.workers)
                self._pool.submit(_ready).result()  # starts every worker now
            except (BrokenProcessPool, OSError) as exc:
                log.warning("parse pool cannot start (%s); parsing inline", exc)
                self._close()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._close()

    def _close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def submit(self, job: ParseJob, on_done: Callable[[], None] | None = None) -> int:
        """Queue one document; returns its place in ``results()`` (and for ``outcome``).

        ``on_done`` is called once its outcome is ready (from the pool's own thread, or before
        ``submit`` returns when parsed inline): a caller can wait for that instead of polling.
        """
        if self._pool is None:
            self._jobs.append(None)
            self._pending.append(_revive(_run_job(job)))
            if on_done is not None:
                on_done()
            return len(self._jobs) - 1
        self._jobs.append(job)
        try:
            future = self._pool.submit(_run_job, job)
        except (BrokenProcessPool, RuntimeError):
            self._jobs[-1] = None
            self._pending.append(_revive(_run_job(job)))
            if on_done is not None:
                on_done()
            return len(self._jobs) - 1
        self._pending.append(future)
        if on_done is not None:
            future.add_done_callback(lambda _: on_done())
        return len(self._jobs) - 1

    def done(self, index: int) -> bool:
        """Whether the ``index``-th document's outcome is ready (``outcome`` would not wait)."""
        pending = self._pending[index]
        return not isinstance(pending, Future) or pending.done()

    def forget(self, index: int) -> None:
        """Let go of the ``index``-th document and its outcome (stored: no longer needed)."""
        self._jobs[index] = None
        self._pending[index] = None

    def outcome(self, index: int) -> ParsedFeed | ParseError:
        """The outcome of the ``index``-th submitted document (waits for it alone)."""
        pending = self._pending[index]
        if pending is None:
            raise KeyError(f"parse job {index} was forgotten")
        if not isinstance(pending, Future):
            return pending
        try:
            done = _revive(pending.result())
        except BrokenProcessPool:
            # A worker died (out of memory, killed): this document is parsed here instead.
            job = self._jobs[index]
            assert job is not None
            done = _revive(_run_job(job))
        self._pending[index] = done  # the pool's copy can go; asking again costs nothing
        self._jobs[index] = None
        return done

    def results(self) -> list[ParsedFeed | ParseError]:
        """Every submitted document's outcome, in submission order (waits for the pool)."""
        return [self.outcome(i) for i in range(len(self._jobs))]


def parse_many(jobs: Sequence[ParseJob], workers: int = 0) -> list[ParsedFeed | ParseError]:
    """Parse every job, in order, on a process pool (``workers=0``: one per core).

    One or two jobs are parsed inline: starting processes would cost more than it saves.
    """
    count = min(workers or os.cpu_count() or 1, len(jobs))
    if len(jobs) < POOL_THRESHOLD or count <= 1:
        return [_revive(_run_job(job)) for job in jobs]
    with ParsePool(count) as pool:
        for job in jobs:
            pool.submit(job)
        return pool.results()
