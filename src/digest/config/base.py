"""What every section shares: the frozen, strict base model, durations and crontab checks."""

from __future__ import annotations

import re
from datetime import timedelta

from pydantic import BaseModel, ConfigDict

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


#: Field names of a 6-field crontab (seconds first, as in ``"*/2 * * * * *"``).
CRON_FIELDS_WITH_SECONDS = ("second", "minute", "hour", "day", "month", "day_of_week")


def _check_crontab(value: str) -> str:
    # APScheduler is the one that will run it, so it is the one that judges it.
    from apscheduler.triggers.cron import CronTrigger

    fields = value.split()
    try:
        if len(fields) == 6:  # seconds first: per-second schedules for tests and soak runs
            CronTrigger(**dict(zip(CRON_FIELDS_WITH_SECONDS, fields, strict=True)))
        elif len(fields) == 5:
            CronTrigger.from_crontab(value)
        else:
            raise ValueError(f"expected 5 fields (or 6, seconds first), got {len(fields)}")
    except ValueError as exc:
        raise ValueError(f"invalid crontab {value!r}: {exc}") from None
    return value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def redact_url(url: str) -> str:
    """Hide the password of a database URL (``postgresql://u:secret@h/db``)."""
    return re.sub(r"(://[^:/@]+:)[^@]+@", r"\1***@", url)
