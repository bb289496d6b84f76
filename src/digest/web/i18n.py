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
        "desk_title": "Editor's desk",
        "desk_sign_in_intro": "Editors sign in with a one-time link sent to their address.",
        "desk_send_link": "Email me a sign-in link",
        "desk_link_sent": (
            "If this address belongs to an editor, a sign-in link is on its way. It works "
            "once, within 15 minutes."
        ),
        "desk_confirm_intro": "Sign in to the desk as {email}?",
        "desk_sign_in": "Sign in",
        "desk_sign_out": "Sign out",
        "desk_signed_in_as": "Signed in as {email}.",
        "desk_no_draft": "There is no draft of the next issue.",
        "desk_build": "Build the draft",
        "desk_issue": "Draft of issue #{number}",
        "desk_approved_by": "Approved by {email}: the next send delivers it.",
        "desk_not_approved": "Not approved yet: nothing goes out until it is.",
        "desk_preview": "The email as subscribers will get it",
        "desk_entries": "Stories",
        "desk_drop": "Drop",
        "desk_pin": "Make it the lead",
        "desk_lead": "Lead story",
        "desk_added": "added by an editor",
        "desk_summary_edited": "summary edited",
        "desk_edit_summary": "Edit the summary",
        "desk_save_summary": "Save the summary",
        "desk_near_misses": "Near misses",
        "desk_near_misses_intro": "Left out by the filter, best first.",
        "desk_new_since": "New since the draft",
        "desk_new_since_intro": "Arrived after the draft was built: not in it unless you add them.",
        "desk_add": "Add",
        "desk_none": "None.",
        "desk_score": "score {score}",
        "desk_why_rules": "rules: score {score} below the threshold {threshold}",
        "desk_why_limit": "kept by the rules, left out by the per-topic limit",
        "desk_why_learned": "learned model: probability {probability} (floor {floor})",
        "desk_note": "Editor's note",
        "desk_note_hint": (
            "A few lines of Markdown, shown on top of the email, the web page and the feed."
        ),
        "desk_save_note": "Save the note",
        "desk_test": "Send a test to me",
        "desk_test_hint": "Exactly as a subscriber gets it, marked [TEST], to {email} only.",
        "desk_approve": "Approve",
        "desk_approve_hint": (
            "The next send (the daemon at its send time) delivers the issue as shown."
        ),
        "desk_done_dropped": "Dropped from the draft.",
        "desk_done_pinned": "That story is now the lead.",
        "desk_done_added": "Added to the draft.",
        "desk_done_summary": "Summary saved.",
        "desk_done_note": "Note saved.",
        "desk_done_test": "Test sent: check your inbox.",
        "desk_done_approved": "Approved: the next send delivers this issue.",
        "desk_done_built": "Draft built.",
        "desk_link_expired": "This sign-in link has expired. Ask for a new one on the desk.",
        "desk_link_used": "This sign-in link has already been used. Ask for a new one on the desk.",
        "desk_not_editor": "This address is not one of the editors.",
        "desk_signed_out": (
            "You are not signed in, or your session has expired. Sign in again on the desk."
        ),
        "desk_bad_form": "The form was incomplete. Reload the desk and try again.",
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
        "desk_title": "Bureau de la rédaction",
        "desk_sign_in_intro": (
            "Les éditeurs se connectent par un lien à usage unique envoyé à leur adresse."
        ),
        "desk_send_link": "M'envoyer un lien de connexion",
        "desk_link_sent": (
            "Si cette adresse est celle d'un éditeur, un lien de connexion est en route. Il "
            "ne sert qu'une fois, dans les 15 minutes."
        ),
        "desk_confirm_intro": "Vous connecter au bureau en tant que {email} ?",
        "desk_sign_in": "Me connecter",
        "desk_sign_out": "Me déconnecter",
        "desk_signed_in_as": "Connecté en tant que {email}.",
        "desk_no_draft": "Il n'y a pas de brouillon du prochain numéro.",
        "desk_build": "Préparer le brouillon",
        "desk_issue": "Brouillon du numéro {number}",
        "desk_approved_by": "Approuvé par {email} : le prochain envoi le distribue.",
        "desk_not_approved": "Pas encore approuvé : rien ne part avant.",
        "desk_preview": "Le courriel tel que les abonnés le recevront",
        "desk_entries": "Articles",
        "desk_drop": "Retirer",
        "desk_pin": "Mettre à la une",
        "desk_lead": "À la une",
        "desk_added": "ajouté par la rédaction",
        "desk_summary_edited": "résumé modifié",
        "desk_edit_summary": "Modifier le résumé",
        "desk_save_summary": "Enregistrer le résumé",
        "desk_near_misses": "Presque retenus",
        "desk_near_misses_intro": "Écartés par le filtre, les meilleurs d'abord.",
        "desk_new_since": "Nouveaux depuis le brouillon",
        "desk_new_since_intro": (
            "Arrivés après la préparation du brouillon : absents tant que vous ne les ajoutez pas."
        ),
        "desk_add": "Ajouter",
        "desk_none": "Aucun.",
        "desk_score": "score {score}",
        "desk_why_rules": "règles : score {score} sous le seuil {threshold}",
        "desk_why_limit": "retenu par les règles, écarté par la limite par thème",
        "desk_why_learned": "modèle appris : probabilité {probability} (plancher {floor})",
        "desk_note": "Mot de la rédaction",
        "desk_note_hint": (
            "Quelques lignes en Markdown, en tête du courriel, de la page web et du flux."
        ),
        "desk_save_note": "Enregistrer le mot",
        "desk_test": "M'envoyer un test",
        "desk_test_hint": (
            "Exactement tel qu'un abonné le reçoit, marqué [TEST], à {email} seulement."
        ),
        "desk_approve": "Approuver",
        "desk_approve_hint": (
            "Le prochain envoi (le démon à l'heure d'envoi) distribue le numéro tel qu'affiché."
        ),
        "desk_done_dropped": "Retiré du brouillon.",
        "desk_done_pinned": "Cet article est désormais à la une.",
        "desk_done_added": "Ajouté au brouillon.",
        "desk_done_summary": "Résumé enregistré.",
        "desk_done_note": "Mot enregistré.",
        "desk_done_test": "Test envoyé : consultez votre messagerie.",
        "desk_done_approved": "Approuvé : le prochain envoi distribue ce numéro.",
        "desk_done_built": "Brouillon préparé.",
        "desk_link_expired": "Ce lien de connexion a expiré. Demandez-en un nouveau sur le bureau.",
        "desk_link_used": (
            "Ce lien de connexion a déjà servi. Demandez-en un nouveau sur le bureau."
        ),
        "desk_not_editor": "Cette adresse n'est pas celle d'un éditeur.",
        "desk_signed_out": (
            "Vous n'êtes pas connecté, ou votre session a expiré. Reconnectez-vous sur le bureau."
        ),
        "desk_bad_form": "Le formulaire était incomplet. Rechargez le bureau et réessayez.",
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
