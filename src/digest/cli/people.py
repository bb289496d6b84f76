"""Subscribers and deliveries: import, list, remove, export, unsubscribe, deliveries."""

from __future__ import annotations

import csv
import json
import sys
import unicodedata
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from digest.cli.app import STATE, app, err, out
from digest.errors import UsageError
from digest.models import SubscriberStatus

if TYPE_CHECKING:
    from digest.store import Store

# The store modules (email-validator among them) are imported inside the commands, so that
# the other commands (`digest fetch` first) start without them.


def _store() -> Store:
    from digest.store import open_store

    return open_store(STATE.settings().storage.url)


@app.group(epilog="Example: digest subscribers import people.csv")
def subscribers() -> None:
    """Manage the people who get the digest (consent, access and erasure requests)."""


@subscribers.command(
    "import",
    epilog="Example: digest subscribers import people.csv   "
    "(header row: email,name,topics,language; topics separated by ';')",
)
@click.argument("csv_file", metavar="FILE.csv", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Check every row and report; write nothing.")
def import_(csv_file: Path, dry_run: bool) -> None:
    """Add the people of a CSV file; present and erased addresses are left alone.

    Each bad row is refused on its own line FILE:LINE: reason and the others are imported;
    exit 1 when a row was refused, 2 when the file is not a subscriber CSV (nothing imported).
    """
    from digest.render import LANGUAGES
    from digest.store.subscribers_csv import import_csv
    from digest.tokens import previous_secret_from_env, secret_from_env

    settings = STATE.settings()
    secret = secret_from_env()

    def row_line(line: str) -> None:
        err.print(line, markup=False)

    store = _store()
    try:
        with store.connect() as conn:
            tx = conn.begin()
            try:
                report = import_csv(
                    conn,
                    csv_file,
                    secret=secret,
                    previous=previous_secret_from_env(),
                    known_topics=set(settings.topics) or None,
                    languages=LANGUAGES,
                    on_line=row_line,
                )
            except BaseException:
                tx.rollback()
                raise
            if dry_run:
                tx.rollback()
            else:
                tx.commit()
    finally:
        store.close()
    out.print(
        ("dry run, nothing written: " if dry_run else "")
        + f"{report.added} added, {report.already_present} already present, "
        f"{report.erased_skipped} skipped (erased), {report.refused} refused",
        markup=False,
    )
    if report.refused:
        sys.exit(1)  # the good rows are in; each refused one was named above


#: A spreadsheet runs a cell that starts with one of these as a formula (OWASP CSV injection).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}


def spreadsheet_safe(value: str) -> str:
    """``value`` prefixed with ``'`` when a spreadsheet would run it as a formula."""
    return "'" + value if value.startswith(_FORMULA_STARTS) else value


def tsv_field(value: str) -> str:
    """One field of a tab-separated line: a backslash, tab, CR, LF or any other control or
    line-separator character is written as an escape (``\\t``, ``\\n``, ``\\x1b``,
    ``\\u2028``), so no value can add a column or a row; formula starts are neutralised."""
    out = []
    for ch in spreadsheet_safe(value):
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif unicodedata.category(ch) in ("Cc", "Zl", "Zp"):
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)


LIST_COLUMNS = ("email", "status", "topics", "language", "name")


@subscribers.command(
    "list",
    epilog="Example: digest subscribers list --status active   "
    "(digest subscribers list --csv > people.csv for a spreadsheet)",
)
@click.option(
    "--status",
    type=click.Choice([s.value for s in SubscriberStatus]),
    default=None,
    help="Only people with this status.",
)
@click.option(
    "--csv",
    "as_csv",
    is_flag=True,
    help="CSV with a header row (email,status,topics,language,name) instead of tab-separated.",
)
def list_(status: str | None, as_csv: bool) -> None:
    """Print one line per subscriber: address, status, topics, language, name.

    Tab-separated by default: control characters are escaped (\\t, \\n, \\x1b) so a value never
    breaks a line; a value a spreadsheet would run (starting with = + - @) gets a leading '.
    """
    from digest.store import subscribers as subs

    writer = None
    if as_csv:
        # Quoting is the csv module's; a stream that writes through click (tests capture it).
        writer = csv.writer(_ClickStream(), lineterminator="\r\n")
        writer.writerow(LIST_COLUMNS)
    store = _store()
    try:
        with store.connect() as conn:
            wanted = SubscriberStatus(status) if status else None
            for rec in subs.list_subscribers(conn, status=wanted):
                topics = ";".join(rec.topics)
                if writer is not None:
                    fields = (rec.email, rec.status.value, topics, rec.language, rec.name)
                    writer.writerow([spreadsheet_safe(f or "") for f in fields])
                    continue
                # Tab-separated for scripts (rich would expand the tabs).
                click.echo(
                    "\t".join(
                        (
                            tsv_field(rec.email),
                            rec.status.value,
                            tsv_field(topics) or "*",
                            tsv_field(rec.language or "") or "-",
                            tsv_field(rec.name or ""),
                        )
                    )
                )
    finally:
        store.close()


class _ClickStream:
    """A file-like object for ``csv.writer`` that writes through ``click.echo``."""

    def write(self, text: str) -> int:
        click.echo(text, nl=False)
        return len(text)


@subscribers.command("remove", epilog="Example: digest subscribers remove ann@example.org")
@click.argument("email")
def remove(email: str) -> None:
    """Erase a person: their data and delivery records go, a keyed hash stays so that a later
    import does not silently subscribe them again."""
    from digest.store import subscribers as subs
    from digest.tokens import secret_from_env

    secret = secret_from_env()
    store = _store()
    try:
        with store.begin() as conn:
            if not subs.erase_subscriber(conn, secret, email, datetime.now(UTC)):
                raise UsageError(f"{email}: no such subscriber")
    finally:
        store.close()
    out.print(f"erased {email}", markup=False)


@subscribers.command("export", epilog="Example: digest subscribers export ann@example.org")
@click.argument("email")
def export(email: str) -> None:
    """Print everything stored about one person as JSON (for an access request)."""
    from digest.store import subscribers as subs

    store = _store()
    try:
        with store.connect() as conn:
            data = subs.export_subscriber(conn, email)
    finally:
        store.close()
    if data is None:
        raise UsageError(f"{email}: no such subscriber")
    click.echo(json.dumps(data, ensure_ascii=False, indent=2))


@app.command(
    epilog="Example: digest unsubscribe ann@example.org   "
    "(or the token from an unsubscribe link or mail subject)"
)
@click.argument("who", metavar="TOKEN|EMAIL")
def unsubscribe(who: str) -> None:
    """Unsubscribe someone by address or by the token of their unsubscribe link."""
    from digest.store import subscribers as subs
    from digest.tokens import previous_secret_from_env, read_token, secret_from_env

    store = _store()
    try:
        with store.begin() as conn:
            if "@" in who:
                rec = subs.get_by_email(conn, who)
                if rec is None:
                    raise UsageError(f"{who}: no such subscriber")
            else:
                token = who.removeprefix("unsubscribe").strip()
                key = read_token(
                    secret_from_env(),
                    token,
                    "unsubscribe",
                    datetime.now(UTC),
                    previous=previous_secret_from_env(),
                )
                rec = subs.get_by_token_key(conn, key)
                if rec is None:
                    raise UsageError("unsubscribe token: this subscriber no longer exists")
            subs.unsubscribe(conn, rec.id, datetime.now(UTC))
    finally:
        store.close()
    out.print(f"unsubscribed {rec.email}", markup=False)


@app.command(
    epilog="Example: digest deliveries --issue 3 --json",
)
@click.option("--issue", "number", type=int, default=None, help="Issue number (default: latest).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object of counts.")
def deliveries(number: int | None, as_json: bool) -> None:
    """Counts per delivery state for an issue, then each failure with its reason."""
    from digest.store import deliveries as dstore
    from digest.store.issues import load_issue

    store = _store()
    try:
        with store.connect() as conn:
            if number is None:
                number = dstore.latest_issue_number(conn)
                if number is None:
                    raise UsageError("no issue yet: nothing has been delivered")
            issue = load_issue(conn, number)
            counts = dstore.counts(conn, issue.id)
            failures = [] if as_json else dstore.failures(conn, issue.id)
    finally:
        store.close()
    if as_json:
        states = {s: counts.get(s, 0) for s in dstore.REPORTED_STATES}
        click.echo(json.dumps({"issue": number, "states": states}))
        return
    order = [*dstore.REPORTED_STATES, *(s for s in counts if s not in dstore.REPORTED_STATES)]
    shown = ", ".join(f"{counts[s]} {s}" for s in order if counts[s] or s in dstore.REPORTED_STATES)
    out.print(f"issue #{number}: {shown}", markup=False)
    for address, reason in failures:
        out.print(f"failed {address}: {reason}", markup=False)
