"""TOML + environment -> validated settings (pydantic v2); secrets redacted when shown.

Every error is one line naming the file and the key path, e.g.
``config/digest.toml: topics.data_protection.include: expected a list of strings``.

One module per family of sections (``general``, ``retention``, ``sources``, ``summary``,
``delivery``, ``web``), ``base`` for what they share and ``loader`` for ``Settings`` and reading
files. To add a section ``[foo]``: write ``config/foo.py`` with ``class FooSection(_Section)``
(from ``config.base``), add one line ``foo: FooSection = Field(default_factory=FooSection)`` to
``Settings`` in ``loader.py``, and re-export ``FooSection`` here if callers need the type.
"""

from digest.config.base import (
    CRON_FIELDS_WITH_SECONDS,
    Crontab,
    Duration,
    parse_duration,
    redact_url,
)
from digest.config.bounces import BouncesSection
from digest.config.brand import BrandSection
from digest.config.delivery import DeliverySection, DKIMSection, SMTPSection
from digest.config.filters import FiltersSection
from digest.config.general import DaemonSection, DigestSection, ScheduleSection, StorageSection
from digest.config.loader import (
    CONFIG_ENV,
    DEFAULT_CONFIG,
    ENV_OVERRIDES,
    SECRET_ENV,
    Settings,
    config_path,
    load,
    parse_settings,
)
from digest.config.render import RenderSection
from digest.config.retention import KeepFor, RetentionSection
from digest.config.review import ReviewSection
from digest.config.sources import (
    ExampleEntry,
    FeedSection,
    FetchSection,
    TermEntry,
    TopicSection,
)
from digest.config.summary import LLMSection, SummarySection
from digest.config.web import WebSection

__all__ = [
    "CONFIG_ENV",
    "CRON_FIELDS_WITH_SECONDS",
    "DEFAULT_CONFIG",
    "ENV_OVERRIDES",
    "SECRET_ENV",
    "BouncesSection",
    "BrandSection",
    "Crontab",
    "DKIMSection",
    "DaemonSection",
    "DeliverySection",
    "DigestSection",
    "Duration",
    "ExampleEntry",
    "FeedSection",
    "FetchSection",
    "FiltersSection",
    "KeepFor",
    "LLMSection",
    "RenderSection",
    "RetentionSection",
    "ReviewSection",
    "SMTPSection",
    "ScheduleSection",
    "Settings",
    "StorageSection",
    "SummarySection",
    "TermEntry",
    "TopicSection",
    "WebSection",
    "config_path",
    "load",
    "parse_duration",
    "parse_settings",
    "redact_url",
]
