"""Full article text for teaser feeds: fetch the page safely (the guarded client in
``httpclient``: no private or metadata addresses, checked on the IP actually connected to, on
every redirect; size cap, timeout, per-host concurrency) and extract the main text with trafilatura.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import trafilatura
from aiohttp import ClientSession

from digest.errors import (
    BlockedAddressError,
    DigestError,
    FetchError,
    FetchTimeout,
    HTTPStatusError,
    TooLargeError,
)
from digest.httpclient import ClientError, Refused, Response, guarded_session, translate_error
from digest.netguard import METADATA_HOSTS, address_refusal
from digest.summarize import clean
from digest.urls import url_problem

__all__ = ["FullTextRequest", "address_refusal", "extract_text", "fetch_full_texts"]

MAX_REDIRECTS = 5
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
USER_AGENT = "digest/0.1 (+https://github.com/digest-newsletter/digest)"


@dataclass(frozen=True, slots=True)
class FullTextRequest:
    """One article page to fetch; ``allow_private`` comes from the feed's allowlist."""

    url: str
    allow_private: bool = False


def _check_url(original: str, url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"}:
        raise BlockedAddressError(original, f"only http and https are fetched, not {url!r}")
    problem = url_problem(url)
    if problem is not None:
        what = "link" if url == original else f"redirect to {url[:200]!r}"
        raise FetchError(original, f"invalid {what}: {problem}")
    if not parts.hostname:
        raise BlockedAddressError(original, f"no host in {url!r}")
    if parts.hostname.rstrip(".") in METADATA_HOSTS:
        raise BlockedAddressError(original, f"{parts.hostname} is a cloud metadata host")


async def _read_capped(response: Response, url: str, max_bytes: int) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise TooLargeError(url, f"page is {int(declared)} bytes, over the {max_bytes} cap")
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(2**16):  # decoded: a bomb counts in full
        size += len(chunk)
        if size > max_bytes:
            raise TooLargeError(url, f"page is over the {max_bytes} bytes cap")
        chunks.append(chunk)
    return b"".join(chunks)


def extract_text(body: bytes, url: str, content_type: str) -> str:
    """Article page -> clean text (paragraphs separated by blank lines)."""
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == "text/plain":
        return clean.plain_to_text(body.decode("utf-8", "replace"))
    if kind and kind not in {"text/html", "application/xhtml+xml"}:
        raise FetchError(url, f"not an HTML page ({kind})")
    try:
        text = trafilatura.extract(
            body, url=url, include_comments=False, include_tables=False, favor_precision=True
        )
    except Exception as exc:  # trafilatura/lxml errors vary by input: report, never crash
        raise FetchError(url, f"could not extract the article text: {exc}") from exc
    if not text or not text.strip():
        raise FetchError(url, "no article text found on the page")
    # trafilatura puts one paragraph per line.
    return clean.plain_to_text(str(text).replace("\n", "\n\n"))


async def _fetch_one(
    session: ClientSession, url: str, max_bytes: int, *, allow_private: bool
) -> str:
    current = url
    for _ in range(MAX_REDIRECTS + 1):
        _check_url(url, current)
        try:
            async with session.get(current, allow_redirects=False) as response:
                location = response.headers.get("location")
                if response.status in _REDIRECTS and location:
                    # Followed by hand so every hop goes through the same checks.
                    current = urljoin(str(response.url), location)
                    continue
                if response.status >= 400:
                    raise HTTPStatusError(url, response.status)
                body = await _read_capped(response, url, max_bytes)
                content_type = response.headers.get("content-type", "")
                final = str(response.url)
        except Refused as exc:
            raise BlockedAddressError(url, str(exc)) from None
        except (ClientError, TimeoutError) as exc:
            raise translate_error(url, exc, allow_private=allow_private) from exc
        return await asyncio.to_thread(extract_text, body, final, content_type)
    raise FetchError(url, f"more than {MAX_REDIRECTS} redirects")


async def fetch_full_texts(
    requests: Sequence[FullTextRequest],
    *,
    concurrency_per_host: int = 2,
    timeout: float = 15.0,
    max_bytes: int = 5 * 2**20,
) -> dict[str, str | DigestError]:
    """Fetch and extract each article page; failures are values (a DigestError), keyed by URL."""
    limits: dict[str, asyncio.Semaphore] = {}
    sessions: dict[bool, ClientSession] = {}

    def session_for(allow_private: bool) -> ClientSession:
        if allow_private not in sessions:
            sessions[allow_private] = guarded_session(
                allow_private=allow_private,
                limit=100,
                per_host=concurrency_per_host,
                timeout=timeout,
                headers={"User-Agent": USER_AGENT, "Accept": "text/html,*/*;q=0.5"},
                outer_timeout=True,
            )
        return sessions[allow_private]

    async def one(request: FullTextRequest) -> tuple[str, str | DigestError]:
        try:
            host = (urlsplit(request.url).hostname or "").lower()
        except ValueError as exc:  # "http://[::1": no host to even queue on
            return request.url, FetchError(request.url, f"invalid URL: {exc}")
        gate = limits.setdefault(host, asyncio.Semaphore(concurrency_per_host))
        async with gate:
            try:
                async with asyncio.timeout(timeout):
                    text = await _fetch_one(
                        session_for(request.allow_private),
                        request.url,
                        max_bytes,
                        allow_private=request.allow_private,
                    )
            except DigestError as exc:
                return request.url, exc
            except TimeoutError:
                return request.url, FetchTimeout(request.url, f"no page within {timeout:g} s")
            except ValueError as exc:  # malformed URL (bad port, bad IPv6 literal...)
                return request.url, FetchError(request.url, f"invalid URL: {exc}")
        return request.url, text

    unique = list({r.url: r for r in requests}.values())
    try:
        results = await asyncio.gather(*(one(r) for r in unique))
    finally:
        for session in sessions.values():
            await session.close()
    return dict(results)
