"""A message to one person outside any list — a sign-up confirmation, an editor's desk link:
built without List-Unsubscribe, signed when DKIM is configured, sent through the configured
delivery (in outbox mode into one fixed folder, the latest per address replacing the last)."""

from __future__ import annotations

from datetime import datetime
from email.utils import make_msgid

from digest.config import Settings
from digest.errors import DeliveryError
from digest.pipeline.wiring import make_sender, make_signer
from digest.send import (
    Job,
    MessageParts,
    Result,
    build_message,
    list_id_for,
    message_bytes,
    split_from,
)
from digest.send.base import Outcome


def one_message(
    settings: Settings,
    *,
    to: str,
    subject: str,
    html: str,
    text: str,
    kind: str,
    reply_to: str | None,
    now: datetime,
) -> tuple[bytes, str]:
    """The wire bytes and Message-ID of one message to ``to`` (``kind`` names its Message-ID)."""
    _, from_email = split_from(settings.delivery.from_)
    domain = from_email.rsplit("@", 1)[-1]
    message_id = make_msgid(kind, domain=domain)
    msg = build_message(
        MessageParts(
            html=html,
            text=text,
            subject=subject,
            from_addr=settings.delivery.from_,
            to_addr=to,
            to_name=None,
            reply_to=reply_to,
            message_id=message_id,
            list_id=list_id_for(settings.digest.title, settings.delivery.list_id or domain),
            unsubscribe_https=None,
            unsubscribe_mailto=f"mailto:{from_email}",
            date=now,
        )
    )
    # Not a list message: the person is not (or not yet) a subscriber, there is nothing to leave.
    del msg["List-Unsubscribe"]
    data = message_bytes(msg)
    signer = make_signer(settings)
    return (signer.sign(data) if signer is not None else data), message_id


def send_one(
    settings: Settings, data: bytes, message_id: str, *, to: str, folder: str, what: str
) -> None:
    """Hand one message to the configured delivery (``<outbox>/<folder>/`` in outbox mode);
    DeliveryError "``to``: ``what`` not sent: reason" when it did not go."""
    _, envelope_from = split_from(settings.delivery.from_)
    job = Job(
        delivery_id=0,
        issue_number=0,
        envelope_from=envelope_from,
        recipient=to,
        data=data,
        message_id=message_id,
    )
    results: list[Result] = []
    make_sender(settings, outbox_folder=folder).send_all([job], results.extend)
    if not results or results[0].outcome is not Outcome.SENT:
        reason = results[0].error if results else "no answer from the sender"
        raise DeliveryError(f"{to}: {what} not sent: {reason}")
