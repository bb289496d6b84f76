"""The sign-up confirmation email, built with ``send.build_message`` and handed to the
configured delivery: a ``.eml`` in ``<outbox>/confirmations/`` or the SMTP relay.
"""

from __future__ import annotations

import logging
from datetime import datetime

import jinja2

from digest import config
from digest.pipeline.onemail import one_message, send_one
from digest.web.i18n import Translator

log = logging.getLogger(__name__)


def confirmation_bytes(
    settings: config.Settings,
    env: jinja2.Environment,
    *,
    address: str,
    link: str,
    language: str,
    now: datetime,
) -> tuple[bytes, str]:
    """The wire form of the confirmation email and its Message-ID."""
    t = Translator(language)
    title = settings.digest.title
    ttl_hours = max(1, round(settings.web.confirm_ttl.seconds / 3600))
    ttl = t.plural("hours", ttl_hours)
    subject = t("confirm_email_subject", title=title)
    hello = t("confirm_email_hello")
    intro = t("confirm_email_intro", title=title, email=address, ttl=ttl)
    ignore = t("confirm_email_ignore")
    text = f"{hello}\n\n{intro}\n\n{link}\n\n{ignore}\n"
    html = env.get_template("confirm_email.html.j2").render(
        lang=t.language,
        subject=subject,
        site_title=title,
        hello=hello,
        intro=intro,
        button=t("confirm_email_button"),
        ignore=ignore,
        link=link,
    )
    return one_message(
        settings,
        to=address,
        subject=subject,
        html=html,
        text=text,
        kind="confirm",
        reply_to=settings.delivery.reply_to,
        now=now,
    )


def send_confirmation(
    settings: config.Settings,
    env: jinja2.Environment,
    *,
    address: str,
    link: str,
    language: str,
    now: datetime,
) -> None:
    """Send one confirmation email; DeliveryError naming the address when it did not go."""
    data, message_id = confirmation_bytes(
        settings, env, address=address, link=link, language=language, now=now
    )
    send_one(
        settings, data, message_id, to=address, folder="confirmations", what="confirmation email"
    )
    log.info("confirmation email sent", extra={"mode": settings.delivery.mode})
