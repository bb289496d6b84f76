"""The ``[digest]``, ``[storage]``, ``[schedule]`` and ``[daemon]`` sections."""

from __future__ import annotations

import re
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator

from digest.config.base import Crontab, Duration, _Section, header_safe
from digest.config.retention import RetentionSection


class DigestSection(_Section):
    title: str = "Digest"
    language: Literal["en", "fr"] = "en"
    timezone: str = "UTC"
    max_items_per_topic: int = Field(default=8, ge=1, le=100)
    window_days: int = Field(default=7, ge=1, le=365)
    #: Public https root of `digest serve` (unsubscribe links, archive); None until deployed.
    base_url: str | None = None
    #: An item that fits two topics appears once, under its best topic.
    one_topic_per_item: bool = True
    #: Languages the readers read: an item detected in another language is dropped (one whose
    #: language cannot be told is kept). Empty: every language.
    languages: list[str] = Field(default_factory=lambda: ["fr", "en"], max_length=50)

    @field_validator("languages")
    @classmethod
    def _languages(cls, v: list[str]) -> list[str]:
        out = []
        for code in v:
            c = code.strip().lower()
            if not re.fullmatch(r"[a-z]{2,3}", c):
                raise ValueError(f"{code!r} is not a two- or three-letter language code")
            out.append(c)
        return out

    @field_validator("title")
    @classmethod
    def _title(cls, v: str) -> str:
        return header_safe(v)  # the List-Id phrase and, through {title}, the subject

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA timezone {v!r}") from None
        return v

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, v: str | None) -> str | None:
        if v is None:
            return v
        # Whole value: it goes into List-Unsubscribe headers and links (no spaces, no CR/LF).
        if not re.fullmatch(r"https?://[^/\s]+(/\S*)?", v):
            raise ValueError(f"expected an http(s) URL, got {v!r}")
        if not v.isascii():
            # It is written into List-Unsubscribe headers, which are ASCII.
            raise ValueError(
                f"{v!r}: write the host in its ASCII (xn--) form and %-encode the path"
            )
        return v.rstrip("/")


class StorageSection(_Section):
    url: str = "sqlite:///var/digest.db"
    #: The topic model `digest topics learn` writes; without it, the one shipped is used.
    topic_model: str = "var/topic-model.json.gz"
    #: Derived data digest can rebuild (the topics' word forms): safe to delete.
    cache_dir: str = "var/cache"
    #: How long old items, delivery rows and cached summaries are kept (``digest prune``).
    retention: RetentionSection = Field(default_factory=RetentionSection)


class ScheduleSection(_Section):
    fetch: Crontab = Crontab.parse("0 * * * *", check=False)
    send: Crontab = Crontab.parse("0 8 * * mon", check=False)
    #: A run missed while the daemon was down still happens when it is back within this delay.
    catch_up: Duration = Duration.parse("12h")
    #: When the daemon prunes what is older than ``[storage] retention`` (a quiet hour).
    prune: Crontab = Crontab.parse("30 3 * * *", check=False)

    @property
    def catch_up_seconds(self) -> int:
        return int(self.catch_up.seconds)


class DaemonSection(_Section):
    #: host:port for /healthz and /metrics; None disables the HTTP endpoint.
    http: str | None = None
    log_format: Literal["text", "json"] = "text"
    #: How long the database lock lasts without renewal.
    lock_lease: Duration = Duration.parse("60s")
    #: How long `digest run` waits for a busy lock before exiting 2 (0: refuse at once).
    lock_wait: Duration = Duration.parse("0s")
    #: A second `digest run` with this set waits as a hot standby (instead of exiting 2) and
    #: takes the schedule over when the active daemon dies or freezes past its lease.
    standby: bool = False
    #: A job failing this many times in a row makes /healthz answer 503.
    unhealthy_after: int = Field(default=3, ge=1, le=1000)

    @field_validator("http")
    @classmethod
    def _address(cls, v: str | None) -> str | None:
        # The rule healthd.parse_address applies when the daemon starts: refused here, so that
        # `digest check` says it rather than `digest run` on the server.
        if v is None:
            return v
        _, sep, port = v.rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"expected host:port (port 0-65535), got {v!r}")
        return v

    @field_validator("lock_lease")
    @classmethod
    def _positive(cls, v: Duration) -> Duration:
        if v.seconds <= 0:
            raise ValueError(f"expected a positive duration, got {v.text!r}")
        return v
