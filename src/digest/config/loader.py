"""``Settings`` (every section in one frozen model) and reading it from TOML + environment.

Every error is one line naming the file and the key path.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator, model_validator

from digest.config.base import _Section, redact_url
from digest.config.bounces import BouncesSection
from digest.config.brand import BrandSection
from digest.config.delivery import DeliverySection, DKIMSection, SMTPSection
from digest.config.filters import FiltersSection
from digest.config.general import DaemonSection, DigestSection, ScheduleSection, StorageSection
from digest.config.render import RenderSection
from digest.config.retention import KeepFor
from digest.config.review import ReviewSection
from digest.config.sources import FeedSection, FetchSection, TopicSection
from digest.config.summary import SummarySection
from digest.config.web import WebSection
from digest.errors import ConfigError
from digest.models import FeedSpec, TopicDef

DEFAULT_CONFIG = Path("config/digest.toml")
CONFIG_ENV = "DIGEST_CONFIG"
SECRET_ENV = "DIGEST_SECRET"


class Settings(_Section):
    digest: DigestSection = Field(default_factory=DigestSection)
    storage: StorageSection = Field(default_factory=StorageSection)
    schedule: ScheduleSection = Field(default_factory=ScheduleSection)
    feeds: list[FeedSection] = Field(default_factory=list)
    topics: dict[str, TopicSection] = Field(default_factory=dict)
    filters: FiltersSection = Field(default_factory=FiltersSection)
    fetch: FetchSection = Field(default_factory=FetchSection)
    summary: SummarySection = Field(default_factory=SummarySection)
    delivery: DeliverySection = Field(default_factory=DeliverySection)
    smtp: SMTPSection = Field(default_factory=SMTPSection)
    dkim: DKIMSection | None = None
    daemon: DaemonSection = Field(default_factory=DaemonSection)
    web: WebSection = Field(default_factory=WebSection)
    bounces: BouncesSection = Field(default_factory=BouncesSection)
    brand: BrandSection = Field(default_factory=BrandSection)
    render: RenderSection = Field(default_factory=RenderSection)
    review: ReviewSection = Field(default_factory=ReviewSection)

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

    @model_validator(mode="after")
    def _items_outlive_the_window(self) -> Settings:
        # An item pruned before an issue could take it would silently never be sent.
        retention = self.storage.retention
        keep = retention.items.delta
        window = timedelta(days=self.digest.window_days)
        if keep is None or keep > window:
            return self
        if "items" in retention.model_fields_set:
            raise ValueError(
                f"storage.retention.items: {retention.items} is not longer than "
                f"digest.window_days ({self.digest.window_days}): items would be pruned before "
                "an issue could take them"
            )
        # The default (180 days) under a longer window: keep items twice the window instead.
        longer = KeepFor.parse(f"{2 * self.digest.window_days}d")
        storage = self.storage.model_copy(
            update={"retention": retention.model_copy(update={"items": longer})}
        )
        object.__setattr__(self, "storage", storage)  # frozen model: set once, while validating
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
