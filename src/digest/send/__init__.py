"""Sending: build each reader's message, sign it (DKIM), write it to the outbox or hand it to
SMTP. A stage (``models``, ``errors`` and its libraries only); ``pipeline.deliver`` drives it.
"""

from digest.send.base import Job, Outcome, Result, Sender, backoff_delay
from digest.send.dkim import DKIMSigner, load_key
from digest.send.message import (
    MessageParts,
    build_message,
    clean_name,
    header_value,
    list_id_for,
    message_bytes,
    message_id_for,
    safe_filename,
    split_from,
    unsubscribe_mailto,
    wire_message,
)
from digest.send.outbox import OutboxSender
from digest.send.smtp import SMTPOptions, SMTPSender

__all__ = [
    "DKIMSigner",
    "Job",
    "MessageParts",
    "OutboxSender",
    "Outcome",
    "Result",
    "SMTPOptions",
    "SMTPSender",
    "Sender",
    "backoff_delay",
    "build_message",
    "clean_name",
    "header_value",
    "list_id_for",
    "load_key",
    "message_bytes",
    "message_id_for",
    "safe_filename",
    "split_from",
    "unsubscribe_mailto",
    "wire_message",
]
