"""``digest bounces receive`` (one message on stdin, for an MTA pipe) and ``digest bounces poll``
(the ``[bounces]`` IMAP mailbox)."""

from __future__ import annotations

import logging
import os
import sys

import click

from digest.cli.app import STATE, app, err, fail, out
from digest.errors import ConfigError, StoreError
from digest.tokens import secret_from_env

log = logging.getLogger("digest.bounces")

#: sysexits.h EX_TEMPFAIL: the MTA keeps the message and tries again later.
EX_TEMPFAIL = 75
#: A bounce is small; a multi-megabyte message on the pipe is not one worth reading whole.
MAX_MESSAGE = 10 * 1024 * 1024


@app.group(epilog="Example: digest bounces receive < bounce.eml")
def bounces() -> None:
    """Bounces, complaints (ARF) and mailed unsubscribe requests."""


@bounces.command(
    "receive",
    epilog='Example (Postfix alias): bounces: "|/usr/local/bin/digest bounces receive"',
)
@click.option(
    "--recipient",
    default=None,
    help="Envelope recipient (default: $ORIGINAL_RECIPIENT or $RECIPIENT, as MTAs set them).",
)
def receive(recipient: str | None) -> None:
    """Read one message on stdin and act on it. Exit 0 when handled or not a bounce; 75
    (EX_TEMPFAIL) when the database is unavailable, so the MTA retries."""
    from digest.pipeline.bounces import handle_message
    from digest.store import open_store

    data = sys.stdin.buffer.read(MAX_MESSAGE + 1)[:MAX_MESSAGE]
    rcpt = recipient or os.environ.get("ORIGINAL_RECIPIENT") or os.environ.get("RECIPIENT")
    try:
        settings = STATE.settings()
        secret_from_env()
    except ConfigError as exc:
        # A bounce lost to a configuration slip cannot be had again: the MTA keeps it.
        err.print(f"error: {exc}; the MTA will retry once it is fixed", markup=False)
        sys.exit(EX_TEMPFAIL)
    try:
        store = open_store(settings.storage.url)
        try:
            handled = handle_message(settings, store, data, recipient=rcpt)
        finally:
            store.close()
    except StoreError as exc:
        err.print(f"error: store unavailable, try again later: {exc}", markup=False)
        sys.exit(EX_TEMPFAIL)
    log.info("bounces receive: %s", handled.line())


@bounces.command("poll", epilog="Example: digest bounces poll")
def poll() -> None:
    """Process every message waiting in the [bounces] IMAP folder, then move or delete it."""
    from digest.pipeline.bounces import poll_mailbox
    from digest.store import open_store

    settings = STATE.settings()
    if not settings.bounces.host:
        fail("[bounces] host is not set: no mailbox to poll", 2)
    store = open_store(settings.storage.url)
    try:
        report = poll_mailbox(settings, store)
    finally:
        store.close()
    for line in report.lines:
        out.print(line, markup=False)
    out.print(
        f"{report.processed} message(s) processed, {report.matched} matched, "
        f"{report.bounced} bounced, {report.unsubscribed} unsubscribed"
        + (f", {report.left} left for later (store unavailable)" if report.left else ""),
        markup=False,
    )
    if report.left:
        sys.exit(1)
