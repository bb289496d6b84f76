"""The sign-up confirmation email, built with ``send.build_message`` and handed to the
configured delivery: a ``.eml`` in ``<outbox>/confirmations/`` or the SMTP relay.
"""

from __future__ import annotations

import logging
from datetime import datetime
from email.utils import make_msgid

import jinja2

from digest import config
from digest.errors import DeliveryError
from digest.pipeline.wiring import make_sender, make_signer
from digest.send import (
    Job,
    MessageParts,
    Result,
    Sender,
    build_message,
    list_id_for,
    message_bytes,
    split_from,
)
from digest.send.base import Outcome
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
    _, from_email = split_from(settings.delivery.from_)
    domain = from_email.rsplit("@", 1)[1]
    message_id = make_msgid("confirm", domain=domain)
    msg = build_message(
        MessageParts(
            html=html,
            text=text,
            subject=subject,
            from_addr=settings.delivery.from_,
            to_addr=address,
            to_name=None,
            reply_to=settings.delivery.reply_to,
            message_id=message_id,
            list_id=list_id_for(title, settings.delivery.list_id or domain),
            unsubscribe_https=None,
            unsubscribe_mailto=f"mailto:{from_email}",
            date=now,
        )
    )
    # Not a list message yet: the person has not subscribed, so there is nothing to leave.
    del msg["List-Unsubscribe"]
    data = message_bytes(msg)
    signer = make_signer(settings)
    if signer is not None:
        data = signer.sign(data)
    return data, message_id


def sender_for(settings: config.Settings) -> Sender:
    """The configured delivery (the pipeline's own SMTP sender), for one transactional message;
    in outbox mode one file per address, the latest confirmation replacing the previous one."""
    return make_sender(settings, outbox_folder="confirmations")


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
    _, envelope_from = split_from(settings.delivery.from_)
    job = Job(
        delivery_id=0,
        issue_number=0,
        envelope_from=envelope_from,
        recipient=address,
        data=data,
        message_id=message_id,
    )
    results: list[Result] = []
    sender_for(settings).send_all([job], results.extend)
    if not results or results[0].outcome is not Outcome.SENT:
        reason = results[0].error if results else "no answer from the sender"
        raise DeliveryError(f"{address}: confirmation email not sent: {reason}")
    log.info("confirmation email sent", extra={"mode": settings.delivery.mode})
