"""``[storage] retention``: how long old rows are kept before ``digest prune`` (and the daemon's
nightly prune job) removes them; a duration like ``"180d"``, or ``"forever"``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import GetCoreSchemaHandler, field_validator
from pydantic_core import CoreSchema

from digest.config.base import _Section, _text_type, parse_duration

FOREVER = "forever"
#: The shortest ``deliveries`` retention: a late complaint or bounce (feedback loops report
#: days or weeks later) is matched to its reader through the delivery row.
MIN_DELIVERIES = timedelta(days=30)


@dataclass(frozen=True)
class KeepFor:
    """A retention as written (``"180d"``, ``"forever"``) and as a timedelta (None: forever)."""

    text: str
    delta: timedelta | None

    @classmethod
    def parse(cls, text: str) -> KeepFor:
        if text.strip().lower() == FOREVER:
            return cls(FOREVER, None)
        try:
            delta = parse_duration(text)
        except ValueError:
            raise ValueError(
                f"expected a duration like '180d' or '52w', or 'forever', got {text!r}"
            ) from None
        if delta < timedelta(days=1):
            raise ValueError(f"expected at least 1 day (or 'forever'), got {text!r}")
        return cls(text, delta)

    @property
    def forever(self) -> bool:
        return self.delta is None

    def cutoff(self, now: datetime) -> datetime | None:
        """Rows older than this go; None: nothing goes."""
        return None if self.delta is None else now - self.delta

    def __str__(self) -> str:
        return self.text

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return _text_type(cls.parse)


class RetentionSection(_Section):
    """What ``digest prune`` removes, by age. Issues (the archive), subscribers, erased-address
    hashes, editors' decisions and unfinished deliveries are never pruned."""

    #: Items first seen longer ago (not those an issue took): with their topics and summary.
    #: A fingerprint of each stays, so a feed still listing it does not bring it back as new.
    items: KeepFor = KeepFor.parse("180d")
    #: Per-reader delivery rows of finished issues created longer ago (bounce matching and
    #: ``bounce_after`` need the recent ones; the issue itself is kept), and bounce reports
    #: received longer ago (never those inside ``[bounces] soft_window``).
    deliveries: KeepFor = KeepFor.parse("400d")
    #: Cached LLM summaries written longer ago (keyed by content: old content does not return).
    cache: KeepFor = KeepFor.parse("180d")
    #: Fingerprints (hashed guid and canonical URL) of pruned items: what keeps them from
    #: coming back as new. A few dozen bytes per item.
    fingerprints: KeepFor = KeepFor.parse(FOREVER)

    @field_validator("deliveries")
    @classmethod
    def _deliveries_outlive_late_reports(cls, v: KeepFor) -> KeepFor:
        if v.delta is not None and v.delta < MIN_DELIVERIES:
            raise ValueError(f"expected at least 30 days (or 'forever'), got {v}")
        return v

    @property
    def enabled(self) -> bool:
        return not all(
            k.forever for k in (self.items, self.deliveries, self.cache, self.fingerprints)
        )
