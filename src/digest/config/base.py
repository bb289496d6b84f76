"""What every section shares: the frozen, strict base model, and durations and crontabs as typed
values parsed once at load."""

from __future__ import annotations

import re
import string
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, GetCoreSchemaHandler
from pydantic_core import CoreSchema, core_schema

if TYPE_CHECKING:
    from apscheduler.triggers.cron import CronTrigger

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: str | int | float) -> timedelta:
    """``"12h"``, ``"30d"``, ``"90s"`` or a number of seconds -> timedelta."""
    if isinstance(value, int | float):
        return timedelta(seconds=float(value))
    m = _DURATION.match(value)
    if not m:
        raise ValueError(f"expected a duration like '30s', '12h' or '7d', got {value!r}")
    return timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])


# CR, LF and the other control characters: never in a value that ends up in a mail header.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def header_safe(value: str) -> str:
    """``value`` unless it holds a line break or control character (header injection)."""
    found = _CONTROL.search(value)
    if found:
        raise ValueError(
            f"{value!r} holds a control character ({found.group()!r}): it would end up in a "
            "mail header"
        )
    return value


#: The fields a subject format may name, and nothing else.
SUBJECT_FIELDS = frozenset({"title", "number", "date", "lead"})
#: The largest width or precision in a subject's format spec: ``{number:>999999999}`` would
#: build a gigabyte string for each message (a MemoryError at load, in fact).
MAX_SUBJECT_SPEC_NUMBER = 100
_SPEC_NUMBERS = re.compile(r"\d+")


def check_subject_format(value: str) -> str:
    """Only ``{title}``, ``{number}``, ``{date}`` and ``{lead}`` (with a plain format spec),
    nothing that reaches an attribute or an index (``{title.__class__}``, ``{title[0]}``)."""
    header_safe(value)
    try:
        parts = list(string.Formatter().parse(value))
    except ValueError as exc:
        raise ValueError(f"subject {value!r}: {exc}") from None
    for _, field, spec, conversion in parts:
        if field is None:
            continue
        if field not in SUBJECT_FIELDS:
            raise ValueError(
                "subject may only use {title}, {number}, {date} and {lead}, "
                f"not {{{field}}}"
            )
        if conversion is not None or (spec and ("{" in spec or "}" in spec)):
            raise ValueError(f"subject: {{{field}}} may carry only a plain format spec")
        if any(int(n) > MAX_SUBJECT_SPEC_NUMBER for n in _SPEC_NUMBERS.findall(spec or "")):
            raise ValueError(
                f"subject: {{{field}:{spec}}}: a width or precision over "
                f"{MAX_SUBJECT_SPEC_NUMBER} is not a subject"
            )
    try:
        value.format(title="t", number=1, date="d", lead="l")
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(f"subject {value!r}: {exc}") from None
    return value


#: Field names of a 6-field crontab (seconds first, as in ``"*/2 * * * * *"``).
CRON_FIELDS_WITH_SECONDS = ("second", "minute", "hour", "day", "month", "day_of_week")
#: Field names of a standard 5-field crontab (as APScheduler's ``from_crontab`` reads it).
CRON_FIELDS = CRON_FIELDS_WITH_SECONDS[1:]


def _text_type(parse: Callable[[str], Any]) -> CoreSchema:
    """A config value read from a string, parsed once by ``parse``, shown as it was written."""
    return core_schema.no_info_after_validator_function(
        parse,
        core_schema.str_schema(),
        serialization=core_schema.plain_serializer_function_ser_schema(str),
    )


@dataclass(frozen=True)
class Duration:
    """A duration as written in the config (``"12h"``) and as a timedelta, parsed at load."""

    text: str
    delta: timedelta

    @classmethod
    def parse(cls, text: str) -> Duration:
        return cls(text, parse_duration(text))

    @property
    def seconds(self) -> float:
        return self.delta.total_seconds()

    def __str__(self) -> str:
        return self.text

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return _text_type(cls.parse)


@dataclass(frozen=True)
class Crontab:
    """A crontab as written (5 fields, or 6 with seconds first) and as APScheduler's CronTrigger
    fields, checked at load by APScheduler itself (the one that will run it)."""

    text: str
    #: ``CronTrigger`` keyword arguments: (field name, expression) pairs.
    fields: tuple[tuple[str, str], ...]

    @classmethod
    def parse(cls, text: str, *, check: bool = True) -> Crontab:
        """``check=False`` for the shipped defaults: config loads without importing APScheduler."""
        values = text.split()
        try:
            names: tuple[str, ...]
            if len(values) == 6:  # seconds first: per-second schedules for tests and soak runs
                names = CRON_FIELDS_WITH_SECONDS
            elif len(values) == 5:
                names = CRON_FIELDS
            else:
                raise ValueError(f"expected 5 fields (or 6, seconds first), got {len(values)}")
            fields = tuple(zip(names, values, strict=True))
            if check:
                from apscheduler.triggers.cron import CronTrigger

                CronTrigger(**dict(fields))
        except ValueError as exc:
            raise ValueError(f"invalid crontab {text!r}: {exc}") from None
        return cls(text, fields)

    def trigger(self, timezone: str) -> CronTrigger:
        """The APScheduler trigger firing on this crontab in ``timezone`` (an IANA name)."""
        from apscheduler.triggers.cron import CronTrigger

        return CronTrigger(timezone=ZoneInfo(timezone), **dict(self.fields))

    def __str__(self) -> str:
        return self.text

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return _text_type(cls.parse)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def redact_url(url: str) -> str:
    """Hide the password of a database URL (``postgresql://u:secret@h/db``)."""
    return re.sub(r"(://[^:/@]+:)[^@]+@", r"\1***@", url)
