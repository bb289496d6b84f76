"""The web front's own words in English and French, and language choice per request.

Dates and plural forms come from babel (CLDR), so "1 article" / "0 article" follow each language's
rules instead of an ``n == 1`` guess.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from babel import Locale, negotiate_locale
from babel.dates import format_date

LANGUAGES = ("en", "fr")

#: Plain strings; ``{name}`` fields are filled with ``str.format``. Templates autoescape them.
STRINGS: Mapping[str, Mapping[str, str]] = {
    "en": {
        "archive": "Archive",
        "archive_intro": "Every issue of {title}, newest first.",
        "no_issues": "No issue has been published yet.",
        "issue_n": "Issue #{number}",
        "feed": "Atom feed",
        "subscribe": "Subscribe",
        "subscribe_intro": (
            "One email a week. We send a confirmation link first: nothing else is sent to you "
            "until you confirm. Every email has a one-click unsubscribe link."
        ),
        "email": "Email address",
        "topics": "Topics",
        "topics_hint": "Leave every box unticked to get all topics.",
        "language": "Language of the email",
        "lang_en": "English",
        "lang_fr": "French",
        "submit_subscribe": "Subscribe",
        "check_inbox_title": "Check your inbox",
        "check_inbox": (
            "If {email} can receive this newsletter, a confirmation link is on its way. "
            "It is valid for {ttl}. Nothing is sent until you confirm."
        ),
        "confirm_title": "Confirm your subscription",
        "confirm_intro": "One more click and you will receive {title} at {email}.",
        "submit_confirm": "Confirm my subscription",
        "confirmed_title": "Subscription confirmed",
        "confirmed": "Welcome! {email} will receive the next issue of {title}.",
        "manage_preferences": "Choose topics and language",
        "unsubscribe_title": "Unsubscribe",
        "unsubscribe_intro": "Stop sending {title} to {email}?",
        "submit_unsubscribe": "Unsubscribe",
        "unsubscribed_title": "You are unsubscribed",
        "unsubscribed": "{email} will not receive any further email from {title}.",
        "already_unsubscribed": "{email} is not subscribed to {title}.",
        "preferences_title": "Your preferences",
        "preferences_intro": "Settings for {email}.",
        "submit_preferences": "Save",
        "preferences_saved": "Your preferences are saved.",
        "unsubscribe_link": "Unsubscribe instead",
        "invalid_email": "This does not look like an email address: {reason}",
        "unknown_topic": "Unknown topic: {topic}",
        "unknown_language": "Unknown language: {language}",
        "error_title": "This did not work",
        "invalid_link": (
            "This link is not valid: it was altered or cut short. "
            "Copy the whole link from the email, or sign up again."
        ),
        "expired_link": "This confirmation link has expired. Sign up again to get a new one.",
        "used_link": (
            "This confirmation link has already been used or replaced by a newer one. "
            "If you are subscribed, every email has a link to your preferences."
        ),
        "gone_link": "This link no longer leads anywhere: the subscription it belonged to is gone.",
        "csrf_failed": (
            "The form could not be accepted: its security token is missing or wrong "
            "(cookies may be blocked, or the page was open too long). Reload the page and "
            "try again."
        ),
        "rate_limited": (
            "Too many sign-up attempts from your network. Please try again in an hour."
        ),
        "not_found": "There is no page at this address.",
        "unavailable": "Something went wrong on our side. Please try again in a few minutes.",
        "send_failed": "The confirmation email could not be sent. Please try again later.",
        "back_home": "Back to the archive",
        "items_count_one": "{count} article",
        "items_count_other": "{count} articles",
        "skip": "Skip to content",
        "switch_language": "Français",
        "hours_one": "{count} hour",
        "hours_other": "{count} hours",
        "confirm_email_subject": "Confirm your subscription to {title}",
        "confirm_email_hello": "Hello,",
        "confirm_email_intro": (
            "Someone (hopefully you) asked to receive {title} at {email}. "
            "To confirm, open this link within {ttl}:"
        ),
        "confirm_email_button": "Confirm my subscription",
        "confirm_email_ignore": (
            "If you did not ask for it, ignore this email: you will not hear from us again."
        ),
    },
    "fr": {
        "archive": "Archives",
        "archive_intro": "Tous les numéros de {title}, du plus récent au plus ancien.",
        "no_issues": "Aucun numéro n'a encore été publié.",
        "issue_n": "Numéro {number}",
        "feed": "Flux Atom",
        "subscribe": "S'abonner",
        "subscribe_intro": (
            "Un courriel par semaine. Nous envoyons d'abord un lien de confirmation : rien "
            "d'autre ne vous est envoyé tant que vous n'avez pas confirmé. Chaque courriel "
            "contient un lien de désabonnement en un clic."
        ),
        "email": "Adresse électronique",
        "topics": "Thèmes",
        "topics_hint": "Ne cochez aucune case pour recevoir tous les thèmes.",
        "language": "Langue du courriel",
        "lang_en": "Anglais",
        "lang_fr": "Français",
        "submit_subscribe": "S'abonner",
        "check_inbox_title": "Consultez votre messagerie",
        "check_inbox": (
            "Si {email} peut recevoir cette lettre, un lien de confirmation est en route. "
            "Il est valable {ttl}. Rien ne vous sera envoyé avant votre confirmation."
        ),
        "confirm_title": "Confirmez votre abonnement",
        "confirm_intro": "Encore un clic et vous recevrez {title} à l'adresse {email}.",
        "submit_confirm": "Confirmer mon abonnement",
        "confirmed_title": "Abonnement confirmé",
        "confirmed": "Bienvenue ! {email} recevra le prochain numéro de {title}.",
        "manage_preferences": "Choisir les thèmes et la langue",
        "unsubscribe_title": "Se désabonner",
        "unsubscribe_intro": "Ne plus envoyer {title} à {email} ?",
        "submit_unsubscribe": "Me désabonner",
        "unsubscribed_title": "Vous êtes désabonné",
        "unsubscribed": "{email} ne recevra plus aucun courriel de {title}.",
        "already_unsubscribed": "{email} n'est pas abonné à {title}.",
        "preferences_title": "Vos préférences",
        "preferences_intro": "Réglages pour {email}.",
        "submit_preferences": "Enregistrer",
        "preferences_saved": "Vos préférences sont enregistrées.",
        "unsubscribe_link": "Me désabonner plutôt",
        "invalid_email": "Ceci ne ressemble pas à une adresse électronique : {reason}",
        "unknown_topic": "Thème inconnu : {topic}",
        "unknown_language": "Langue inconnue : {language}",
        "error_title": "Cela n'a pas fonctionné",
        "invalid_link": (
            "Ce lien n'est pas valide : il a été modifié ou tronqué. Copiez le lien complet "
            "depuis le courriel, ou inscrivez-vous à nouveau."
        ),
        "expired_link": (
            "Ce lien de confirmation a expiré. Inscrivez-vous à nouveau pour en recevoir un autre."
        ),
        "used_link": (
            "Ce lien de confirmation a déjà servi ou a été remplacé par un plus récent. "
            "Si vous êtes abonné, chaque courriel contient un lien vers vos préférences."
        ),
        "gone_link": "Ce lien ne mène plus nulle part : l'abonnement correspondant n'existe plus.",
        "csrf_failed": (
            "Le formulaire n'a pas pu être accepté : son jeton de sécurité manque ou est faux "
            "(cookies bloqués, ou page ouverte trop longtemps). Rechargez la page et réessayez."
        ),
        "rate_limited": (
            "Trop de tentatives d'inscription depuis votre réseau. Réessayez dans une heure."
        ),
        "not_found": "Il n'y a pas de page à cette adresse.",
        "unavailable": "Un problème est survenu de notre côté. Réessayez dans quelques minutes.",
        "send_failed": "Le courriel de confirmation n'a pas pu être envoyé. Réessayez plus tard.",
        "back_home": "Retour aux archives",
        "items_count_one": "{count} article",
        "items_count_other": "{count} articles",
        "skip": "Aller au contenu",
        "switch_language": "English",
        "hours_one": "{count} heure",
        "hours_other": "{count} heures",
        "confirm_email_subject": "Confirmez votre abonnement à {title}",
        "confirm_email_hello": "Bonjour,",
        "confirm_email_intro": (
            "Quelqu'un (vous, espérons-le) a demandé à recevoir {title} à l'adresse {email}. "
            "Pour confirmer, ouvrez ce lien dans les {ttl} :"
        ),
        "confirm_email_button": "Confirmer mon abonnement",
        "confirm_email_ignore": (
            "Si vous n'avez rien demandé, ignorez ce courriel : vous n'entendrez plus parler "
            "de nous."
        ),
    },
}


class Translator:
    """The words of one language: ``t("key", name=value)``, ``t.plural("key", n)``, dates."""

    def __init__(self, language: str) -> None:
        self.language = language if language in STRINGS else "en"
        self._strings = STRINGS[self.language]
        self._locale = Locale.parse(self.language)

    def __call__(self, key: str, **values: object) -> str:
        return self._strings[key].format(**values)

    def plural(self, key: str, count: int, **values: object) -> str:
        """``key_one`` or ``key_other`` as CLDR decides for this language (fr: 0 and 1 are one)."""
        form = self._locale.plural_form(count)
        name = f"{key}_{form}" if f"{key}_{form}" in self._strings else f"{key}_other"
        return self._strings[name].format(count=count, **values)

    def date(self, value: datetime, timezone: str = "UTC") -> str:
        """A long date in this language, in ``timezone`` ("28 novembre 2026")."""
        from zoneinfo import ZoneInfo

        return format_date(value.astimezone(ZoneInfo(timezone)).date(), "long", self._locale)


def choose_language(
    query: str | None, accept_language: str | None, default: str
) -> tuple[str, bool]:
    """The language of a page: ``?lang=`` wins, then Accept-Language, then ``default``.

    Returns ``(language, explicit)``; explicit choices are carried along in links.
    """
    if query in LANGUAGES:
        return query, True
    if accept_language:
        found = negotiate_locale(_by_quality(accept_language), list(LANGUAGES), sep="-")
        if found:
            return found, False
    return (default if default in LANGUAGES else "en"), False


def _by_quality(header: str) -> list[str]:
    """Accept-Language tags, most wanted first (``q=0`` means "not this one")."""
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if tag and tag != "*" and quality > 0:
            ranked.append((-quality, index, tag))
    return [tag for _, _, tag in sorted(ranked)]
