"""The DigestError tree: every failure digest reports on purpose is one of these.

Third-party exceptions (httpx, feedparser, SQLAlchemy, smtplib, pydantic...) are caught at the
module that talks to that library and re-raised as one of these with ``raise ... from exc``, so
the CLI and the daemon only ever need to know this tree::

    DigestError                      one-line message naming the culprit (file, key, URL, address)
    ├── ConfigError                  invalid or missing configuration             (CLI exit 2)
    ├── UsageError                   bad command-line input (file, CSV, id)       (CLI exit 2)
    │   └── TokenError               a signed link token is not acceptable
    │       ├── InvalidToken         tampered, malformed, signed with another secret, wrong purpose
    │       └── ExpiredToken         valid signature, past its expiry
    ├── LockedError                  another process holds the database lock      (CLI exit 2)
    ├── FeedError                    one feed could not be fetched or parsed
    │   ├── FetchError               network / HTTP failure for one feed
    │   │   ├── FetchTimeout
    │   │   ├── HTTPStatusError      4xx / 5xx (status kept)
    │   │   ├── TooLargeError        body over the size cap
    │   │   └── BlockedAddressError  URL resolves to a refused address (SSRF guard)
    │   └── ParseError               the bytes are not a feed
    ├── StoreError                   database unreachable, schema too new, integrity problem
    ├── RenderError                  template or MJML failure
    ├── SummarizeError               a summarizer engine failed (callers fall back)
    └── DeliveryError                mail could not be handed over
        ├── TransientDeliveryError   4xx, dropped connection: retry later
        ├── FatalDeliveryError       authentication / TLS / configuration: stop the run
        └── FencedError              this sender lost its claim (paused past its lease): stop

A recipient refused for good (5xx) is not an exception but a ``send.Outcome.PERMANENT`` result:
one refusal never stops the other recipients.
"""

from __future__ import annotations


class DigestError(Exception):
    """Base of every error digest raises on purpose; ``str()`` is a one-line message."""


class ConfigError(DigestError):
    """The configuration file or environment is invalid; message names file and key path."""


class UsageError(DigestError):
    """A command was given input it cannot use (missing file, bad CSV, unknown id)."""


class TokenError(UsageError):
    """A signed token (unsubscribe, preferences, confirm link) cannot be used."""


class InvalidToken(TokenError):
    """The token is malformed, tampered with, signed with another secret, or for another use."""


class ExpiredToken(TokenError):
    """The token's signature is valid but its expiry has passed."""


class LockedError(DigestError):
    """Another digest process holds the lock on this database."""


class FeedError(DigestError):
    """One feed failed; never aborts a batch, it is recorded on the feed."""

    def __init__(self, url: str, message: str) -> None:
        super().__init__(f"{url}: {message}")
        self.url = url
        self.reason = message


class FetchError(FeedError):
    """Network or HTTP failure while fetching one URL."""


class FetchTimeout(FetchError):
    """The server did not answer within the timeout."""


class HTTPStatusError(FetchError):
    """The server answered with an error status."""

    def __init__(self, url: str, status: int, message: str | None = None) -> None:
        super().__init__(url, message or f"HTTP {status}")
        self.status = status


class TooLargeError(FetchError):
    """The response body exceeded the configured size cap."""


class BlockedAddressError(FetchError):
    """The URL (or a redirect) resolves to an address digest refuses to contact."""


class ParseError(FeedError):
    """The fetched bytes are not a usable feed."""


class StoreError(DigestError):
    """The database failed or holds a schema this version cannot use."""


class RenderError(DigestError):
    """A template or the MJML compiler failed."""


class SummarizeError(DigestError):
    """A summarizer engine failed; callers fall back to the extractive engine."""

    #: True when the engine's endpoint failed (timeout, HTTP error), not merely one answer.
    endpoint_down: bool = False


class DeliveryError(DigestError):
    """Mail could not be handed to the relay or written to the outbox."""


class TransientDeliveryError(DeliveryError):
    """Temporary failure (4xx reply, dropped connection): retry with backoff."""


class FatalDeliveryError(DeliveryError):
    """Authentication, TLS or configuration failure: the whole run must stop."""


class FencedError(DeliveryError):
    """This sender's claim on its recipients is gone (it was paused longer than the lease and
    another sender took them): it stopped without sending to them."""
