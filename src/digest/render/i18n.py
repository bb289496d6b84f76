"""The email's own words in English and French, with babel for dates, periods and plurals.

Content (titles, summaries, source names) is never translated; only the frame around it is.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale
from babel.dates import format_date

from digest.errors import RenderError

# Plain strings with str.format fields; plural entries map CLDR categories to strings.
_MESSAGES: dict[str, dict[str, str | dict[str, str]]] = {
    "en": {
        "issue": "Issue #{number}",
        "articles": {"one": "{n} article", "other": "{n} articles"},
        "in_this_issue": "In this issue",
        "also_covered": "Also covered by:",
        "machine_written": "Summary written by a machine",
        "greeting": "Hello,",
        "greeting_named": "Hello {name},",
        "why": "You receive this because you subscribed to {title}.",
        "unsubscribe": "Unsubscribe",
        "preferences": "Manage your preferences",
        "view_online": "Read this issue in your browser",
        "archive": "All issues",
        "page_footer": "{title}, issue #{number}.",
        "empty": "No articles in this issue.",
        "lead": "Top story",
        "editor_note": "From the editor",
        "label": "{text}:",
        "period_same_month": "{month} {d1} – {d2}, {year}",
        "period_same_year": "{start} – {end}, {year}",
        "period": "{start} – {end}",
        "reading_time": "{n} min read",
        "more_online": {
            "one": "{n} more article in the online issue",
            "other": "{n} more articles in the online issue",
        },
        "more_offline": {
            "one": "{n} more article did not fit in this email.",
            "other": "{n} more articles did not fit in this email.",
        },
        "view_in_browser": "View in your browser",
        "sent_to": "This email was sent to",
        "sent_by": "Sent by {name}.",
        "sent_by_from": "Sent by {name}, {address}.",
        "language_marker": "In {language}",
    },
    "fr": {
        "issue": "Numéro {number}",
        "articles": {"one": "{n} article", "other": "{n} articles"},
        "in_this_issue": "Dans ce numéro",
        "also_covered": "Également traité par\u00a0:",
        "machine_written": "Résumé rédigé par une machine",
        "greeting": "Bonjour,",
        "greeting_named": "Bonjour {name},",
        "why": "Vous recevez ce message car vous êtes abonné à {title}.",
        "unsubscribe": "Se désabonner",
        "preferences": "Gérer vos préférences",
        "view_online": "Lire ce numéro dans votre navigateur",
        "archive": "Tous les numéros",
        "page_footer": "{title}, numéro {number}.",
        "empty": "Aucun article dans ce numéro.",
        "lead": "À la une",
        "editor_note": "Le mot de la rédaction",
        # French puts a (non-breaking) space before a colon.
        "label": "{text}\u00a0:",
        "period_same_month": "du {d1} au {d2} {month} {year}",
        "period_same_year": "du {start} au {end} {year}",
        "period": "du {start} au {end}",
        "reading_time": "{n} min de lecture",
        "more_online": {
            "one": "{n} autre article dans le numéro en ligne",
            "other": "{n} autres articles dans le numéro en ligne",
        },
        "more_offline": {
            "one": "{n} autre article n’a pas tenu dans ce message.",
            "other": "{n} autres articles n’ont pas tenu dans ce message.",
        },
        "view_in_browser": "Voir dans le navigateur",
        "sent_to": "Ce message a été envoyé à",
        "sent_by": "Envoyé par {name}.",
        "sent_by_from": "Envoyé par {name}, {address}.",
        "language_marker": "En {language}",
    },
}

LANGUAGES = tuple(_MESSAGES)


def resolve_language(language: str) -> str:
    """Map "fr", "fr-FR", "EN_us"... to a catalogue language; anything else is a RenderError."""
    primary = language.replace("_", "-").split("-", 1)[0].lower()
    if primary not in _MESSAGES:
        raise RenderError(
            f"language {language!r} is not supported for the email (expected one of "
            f"{', '.join(LANGUAGES)})"
        )
    return primary


def resolve_timezone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise RenderError(f"unknown timezone {name!r} in issue content") from exc


@dataclass(frozen=True, slots=True)
class Words:
    """The catalogue and date formatting for one (language, timezone)."""

    language: str
    tz: ZoneInfo

    @property
    def _locale(self) -> Locale:
        return _locale(self.language)

    def __call__(self, key: str, /, **fields: object) -> str:
        message = _MESSAGES[self.language][key]
        if not isinstance(message, str):
            raise TypeError(f"message {key!r} is a plural: use .plural()")
        return message.format(**fields)

    def plural(self, key: str, n: int) -> str:
        forms = _MESSAGES[self.language][key]
        if not isinstance(forms, Mapping):
            raise TypeError(f"message {key!r} is not a plural")
        category = self._locale.plural_form(n)
        return forms.get(category, forms["other"]).format(n=n)

    def local_date(self, when: datetime) -> dt.date:
        # Naive datetimes are taken as UTC, the convention of every model timestamp.
        if when.tzinfo is None:
            when = when.replace(tzinfo=ZoneInfo("UTC"))
        return when.astimezone(self.tz).date()

    def date(self, when: datetime, fmt: str = "medium") -> str:
        return format_date(self.local_date(when), fmt, locale=self._locale)

    def _day(self, d: dt.date) -> str:
        # French typography writes the first of the month as an ordinal: "1er novembre".
        if self.language == "fr" and d.day == 1:
            return "1er"
        return str(d.day)

    def _day_month(self, d: dt.date) -> str:
        month = format_date(d, "MMMM", locale=self._locale)
        return f"{self._day(d)} {month}" if self.language == "fr" else f"{month} {d.day}"

    def period(self, start: datetime, end: datetime) -> str:
        """ "November 3 – 10, 2025" / "du 3 au 10 novembre 2025", in the digest's timezone."""
        a, b = self.local_date(start), self.local_date(end)
        if b < a:
            a, b = b, a
        if a == b:
            return format_date(a, "long", locale=self._locale)
        if (a.year, a.month) == (b.year, b.month):
            month = format_date(a, "MMMM", locale=self._locale)
            d1 = self._day(a) if self.language == "fr" else str(a.day)
            return self("period_same_month", month=month, d1=d1, d2=b.day, year=a.year)
        if a.year == b.year:
            return self(
                "period_same_year",
                start=self._day_month(a),
                end=self._day_month(b),
                year=a.year,
            )
        return self(
            "period",
            start=format_date(a, "long", locale=self._locale),
            end=format_date(b, "long", locale=self._locale),
        )


_LOCALES: dict[str, Locale] = {}


def _locale(language: str) -> Locale:
    # Locale.parse reads CLDR data from disk: keep one per language.
    loc = _LOCALES.get(language)
    if loc is None:
        loc = _LOCALES[language] = Locale.parse(language)
    return loc


def words(language: str, timezone: str) -> Words:
    return Words(resolve_language(language), resolve_timezone(timezone))


def message(language: str, key: str, /, **fields: object) -> str:
    """One non-plural message, for callers without a timezone (personalize)."""
    text = _MESSAGES[resolve_language(language)][key]
    if not isinstance(text, str):
        raise TypeError(f"message {key!r} is a plural")
    return text.format(**fields)
