"""TOML + environment -> validated settings (pydantic v2); secrets redacted when shown.

Every error is one line naming the file and the key path, e.g.
``config/digest.toml: topics.data_protection.include: expected a list of strings``.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from digest.errors import ConfigError
from digest.models import FeedSpec, Term, TopicDef, TopicExample

DEFAULT_CONFIG = Path("config/digest.toml")
CONFIG_ENV = "DIGEST_CONFIG"
SECRET_ENV = "DIGEST_SECRET"

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
        if not re.match(r"^https?://[^/\s]+", v):
            raise ValueError(f"expected an http(s) URL, got {v!r}")
        return v.rstrip("/")


class StorageSection(_Section):
    url: str = "sqlite:///var/digest.db"


class ScheduleSection(_Section):
    fetch: str = "0 * * * *"
    send: str = "0 8 * * mon"
    #: A run missed while the daemon was down still happens when it is back within this delay.
    catch_up: str = "12h"

    @field_validator("fetch", "send")
    @classmethod
    def _cron(cls, v: str) -> str:
        return _check_crontab(v)

    @field_validator("catch_up")
    @classmethod
    def _catch_up(cls, v: str) -> str:
        parse_duration(v)
        return v

    @property
    def catch_up_seconds(self) -> int:
        return int(parse_duration(self.catch_up).total_seconds())


class FeedSection(_Section):
    url: str = Field(min_length=1)
    name: str | None = None
    topics: list[str] = Field(default_factory=list)
    always: list[str] = Field(default_factory=list)
    full_text: bool = False
    allow_private: bool = False

    def to_model(self) -> FeedSpec:
        return FeedSpec(
            url=self.url,
            name=self.name,
            topics=tuple(self.topics),
            always=tuple(self.always),
            full_text=self.full_text,
            allow_private=self.allow_private,
        )


class TermEntry(_Section):
    term: str = Field(min_length=1)
    weight: float = 1.0


class ExampleEntry(_Section):
    title: str
    text: str = ""
    expect: bool


def _list_of_strings(v: Any) -> Any:
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise ValueError("expected a list of strings")
    return v


def _include_list(v: Any) -> Any:
    ok = isinstance(v, list) and all(isinstance(x, str | dict) for x in v)
    if not ok:
        raise ValueError("expected a list of strings (or {term, weight} tables)")
    return v


def _require_groups(v: Any) -> Any:
    if not isinstance(v, list) or not all(
        isinstance(g, list) and all(isinstance(x, str) for x in g) for g in v
    ):
        raise ValueError("expected a list of lists of strings")
    return v


class TopicSection(_Section):
    title: str
    titles: dict[str, str] = Field(default_factory=dict)
    include: Annotated[list[str | TermEntry], BeforeValidator(_include_list)]
    exclude: Annotated[list[str], BeforeValidator(_list_of_strings)] = Field(default_factory=list)
    require: Annotated[list[list[str]], BeforeValidator(_require_groups)] = Field(
        default_factory=list
    )
    title_weight: float = Field(default=2.0, ge=0)
    threshold: float = Field(default=1.0, ge=0)
    examples: list[ExampleEntry] = Field(default_factory=list)

    def to_model(self, topic_id: str) -> TopicDef:
        return TopicDef(
            id=topic_id,
            title=self.title,
            include=tuple(
                Term(t, 1.0) if isinstance(t, str) else Term(t.term, t.weight) for t in self.include
            ),
            exclude=tuple(self.exclude),
            require=tuple(tuple(g) for g in self.require),
            title_weight=self.title_weight,
            threshold=self.threshold,
            examples=tuple(TopicExample(e.title, e.text, e.expect) for e in self.examples),
            titles=tuple(sorted(self.titles.items())),
        )


class FetchSection(_Section):
    #: Feeds downloaded at once; ``per_host`` of them at most from one site.
    concurrency: int = Field(default=100, ge=1, le=1000)
    per_host: int = Field(default=8, ge=1, le=1000)
    timeout: float = Field(default=20.0, gt=0)
    max_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    #: Parsing processes; 0 means one per core.
    parse_workers: int = Field(default=0, ge=0, le=64)


class LLMSection(_Section):
    base_url: str = "http://127.0.0.1:8000/v1"
    model: str = "gpt-4o-mini"
    api_key_env: str | None = None
    timeout: float = Field(default=30.0, gt=0)
    max_words: int = Field(default=80, ge=10)


class SummarySection(_Section):
    engine: Literal["extractive", "llm"] = "extractive"
    max_words: int = Field(default=60, ge=10, le=400)
    min_words: int = Field(default=40, ge=0, le=1000)
    #: Say in the email when a summary was machine-written by an LLM.
    mark_machine_written: bool = True
    llm: LLMSection = Field(default_factory=LLMSection)


class DeliverySection(_Section):
    mode: Literal["smtp", "outbox"] = "outbox"
    from_: str = Field(default="Digest <digest@localhost>", alias="from")
    reply_to: str | None = None
    outbox_dir: str = "outbox"
    subject: str = "{title} #{number} — {date}"
    #: List-Id domain part; defaults to the From domain.
    list_id: str | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("subject")
    @classmethod
    def _subject(cls, v: str) -> str:
        try:
            v.format(title="t", number=1, date="d")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"subject may only use {{title}}, {{number}} and {{date}}: {exc}"
            ) from None
        return v


class SMTPSection(_Section):
    host: str = "localhost"
    port: int = Field(default=587, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    #: Name of the environment variable holding the password (never the password itself).
    password_env: str | None = "DIGEST_SMTP_PASSWORD"
    timeout: float = Field(default=30.0, gt=0)
    connections: int = Field(default=2, ge=1, le=64)
    rate_per_second: float | None = Field(default=None, gt=0)
    max_attempts: int = Field(default=5, ge=1, le=50)
    ca_file: str | None = None

    def password(self) -> str | None:
        return os.environ.get(self.password_env) if self.password_env else None


class DKIMSection(_Section):
    selector: str
    domain: str
    #: Path of the PEM private key (outside the repository), or ...
    key_file: str | None = None
    #: ... the environment variable that holds the PEM.
    key_env: str | None = None

    @model_validator(mode="after")
    def _one_key(self) -> DKIMSection:
        if not self.key_file and not self.key_env:
            raise ValueError("set key_file or key_env")
        return self


class DaemonSection(_Section):
    #: host:port for /healthz and /metrics; None disables the HTTP endpoint.
    http: str | None = None
    log_format: Literal["text", "json"] = "text"
    #: How long the database lock lasts without renewal.
    lock_lease: str = "60s"
    #: How long `digest run` waits for a busy lock before exiting 2 (0: refuse at once).
    lock_wait: str = "0s"
    #: A job failing this many times in a row makes /healthz answer 503.
    unhealthy_after: int = Field(default=3, ge=1, le=1000)

    @field_validator("lock_lease", "lock_wait")
    @classmethod
    def _duration(cls, v: str, info: ValidationInfo) -> str:
        if parse_duration(v).total_seconds() <= 0 and info.field_name == "lock_lease":
            raise ValueError(f"expected a positive duration, got {v!r}")
        return v


class WebSection(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    confirm_ttl: str = "48h"
    signups_per_ip_per_hour: int = Field(default=20, ge=1)


class Settings(_Section):
    digest: DigestSection = Field(default_factory=DigestSection)
    storage: StorageSection = Field(default_factory=StorageSection)
    schedule: ScheduleSection = Field(default_factory=ScheduleSection)
    feeds: list[FeedSection] = Field(default_factory=list)
    topics: dict[str, TopicSection] = Field(default_factory=dict)
    fetch: FetchSection = Field(default_factory=FetchSection)
    summary: SummarySection = Field(default_factory=SummarySection)
    delivery: DeliverySection = Field(default_factory=DeliverySection)
    smtp: SMTPSection = Field(default_factory=SMTPSection)
    dkim: DKIMSection | None = None
    daemon: DaemonSection = Field(default_factory=DaemonSection)
    web: WebSection = Field(default_factory=WebSection)

    #: Where the settings were read from (set by ``load``; relative paths resolve against cwd).
    source: str = "<defaults>"

    @field_validator("topics")
    @classmethod
    def _topic_ids(cls, v: dict[str, TopicSection]) -> dict[str, TopicSection]:
        for key in v:
            if not re.fullmatch(r"[a-z][a-z0-9_]*", key):
                raise ValueError(f"topic id {key!r} must be lowercase letters, digits and _")
        return v

    @model_validator(mode="after")
    def _feed_topics_exist(self) -> Settings:
        for i, feed in enumerate(self.feeds):
            for tid in (*feed.topics, *feed.always):
                if tid not in self.topics:
                    raise ValueError(f"feeds[{i}].topics: unknown topic {tid!r} (feed {feed.url})")
        return self

    def feed_specs(self) -> tuple[FeedSpec, ...]:
        return tuple(f.to_model() for f in self.feeds)

    def topic_defs(self) -> tuple[TopicDef, ...]:
        return tuple(t.to_model(tid) for tid, t in self.topics.items())

    def redacted(self) -> dict[str, Any]:
        """The settings as a dict fit to print: secrets are never part of it."""
        data = self.model_dump(by_alias=True, exclude={"source"})
        smtp = data["smtp"]
        smtp["password"] = "***" if self.smtp.password() else None
        if data.get("dkim"):
            data["dkim"]["key"] = "***"
        data["storage"]["url"] = redact_url(self.storage.url)
        return data


def redact_url(url: str) -> str:
    """Hide the password of a database URL (``postgresql://u:secret@h/db``)."""
    return re.sub(r"(://[^:/@]+:)[^@]+@", r"\1***@", url)


# --------------------------------------------------------------------------- loading

_MESSAGES = {
    "extra_forbidden": "unknown key",
    "missing": "required key is missing",
    "string_type": "expected a string",
    "int_type": "expected an integer",
    "int_parsing": "expected an integer",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "list_type": "expected a list",
    "dict_type": "expected a table",
    "model_type": "expected a table",
}


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in {"str", "TermEntry"} or part.startswith("function-"):
            continue
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _one_line(source: str, exc: ValidationError) -> str:
    err = exc.errors(include_url=False)[0]
    kind = err["type"]
    msg = _MESSAGES.get(kind)
    if msg is None:
        msg = str(err["msg"]).removeprefix("Value error, ")
    elif kind == "literal_error" or "expected" in str(err.get("ctx", {})):
        msg = str(err["msg"])
    if kind == "literal_error":
        msg = str(err["msg"]).replace("Input should be", "expected")
    loc = _loc(tuple(err["loc"]))
    more = len(exc.errors()) - 1
    suffix = f" (and {more} more error{'s' if more > 1 else ''})" if more else ""
    if not err["loc"]:  # model-level checks put the key path in the message itself
        return f"{source}: {msg}{suffix}"
    return f"{source}: {loc}: {msg}{suffix}"


ENV_OVERRIDES: Mapping[str, tuple[str, str]] = {
    "DIGEST_STORAGE_URL": ("storage", "url"),
    "DIGEST_BASE_URL": ("digest", "base_url"),
    "DIGEST_DELIVERY_MODE": ("delivery", "mode"),
    "DIGEST_SMTP_HOST": ("smtp", "host"),
    "DIGEST_SMTP_PORT": ("smtp", "port"),
    "DIGEST_SMTP_USERNAME": ("smtp", "username"),
}


def config_path(explicit: str | Path | None = None) -> Path:
    """``--config`` wins, then ``$DIGEST_CONFIG``, then ``config/digest.toml``."""
    if explicit:
        return Path(explicit)
    env = os.environ.get(CONFIG_ENV)
    return Path(env) if env else DEFAULT_CONFIG


def parse_settings(data: dict[str, Any], source: str) -> Settings:
    """Validate an already-decoded TOML document; raises ConfigError with one line."""
    data = {**data}
    for env, (section, key) in ENV_OVERRIDES.items():
        if env in os.environ:
            sect = dict(data.get(section) or {})
            sect[key] = os.environ[env]
            data[section] = sect
    try:
        settings = Settings.model_validate({**data, "source": source})
    except ValidationError as exc:
        raise ConfigError(_one_line(source, exc)) from None
    return settings


def load(path: str | Path | None = None) -> Settings:
    """Read and validate the configuration; every problem is a one-line ConfigError."""
    p = config_path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{p}: config file not found (use --config or DIGEST_CONFIG)") from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read config: {exc.strerror}") from None
    data = _read_toml(p, raw)
    # `include = ["topics.toml"]` lets editors keep topics in their own file; tables merge,
    # and the including file wins on conflicts.
    includes = data.pop("include", [])
    if not isinstance(includes, list) or not all(isinstance(x, str) for x in includes):
        raise ConfigError(f"{p}: include: expected a list of file names")
    merged: dict[str, Any] = {}
    for name in includes:
        inc = p.parent / name
        try:
            inc_raw = inc.read_bytes()
        except OSError:
            raise ConfigError(f"{p}: include: cannot read {inc}") from None
        inc_data = _read_toml(inc, inc_raw)
        if "include" in inc_data:
            raise ConfigError(f"{inc}: include: nested includes are not supported")
        _merge(merged, inc_data)
    _merge(merged, data)
    return parse_settings(merged, str(p))


def _read_toml(p: Path, raw: bytes) -> dict[str, Any]:
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: invalid TOML: {exc}") from None


def _merge(into: dict[str, Any], new: Mapping[str, Any]) -> None:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value
