"""The editor's desk on the command line: `digest items list` and `digest draft ...` (build,
show, drop, add, pin, summary, note, test, approve, discard). Only `draft test` sends mail.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from digest.cli.app import STATE, app, err, out
from digest.config import parse_duration
from digest.errors import UsageError

if TYPE_CHECKING:
    from digest.pipeline.draft import Candidate, DraftView
    from digest.store import Store

#: Who the CLI acts as when ``--as`` is not given (before falling back to user@host).
EDITOR_ENV = "DIGEST_EDITOR"


def _store() -> Store:
    from digest.store import open_store

    return open_store(STATE.settings().storage.url)


def _editor(given: str | None) -> str:
    """``--as``, else ``$DIGEST_EDITOR``, else user@host."""
    who = (given or os.environ.get(EDITOR_ENV, "")).strip()
    if who:
        return who.lower()
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "editor"
    return f"{user}@{socket.gethostname()}"


def _read(file: Path) -> str:
    """A text file, or standard input for "-"."""
    if str(file) == "-":
        return sys.stdin.read()
    try:
        return file.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{file}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{file}: not UTF-8 text") from None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


as_option = click.option(
    "--as",
    "as_",
    metavar="EMAIL",
    help=f"Who is acting (default: ${EDITOR_ENV}, else user@host); recorded with the decision.",
)


# --------------------------------------------------------------------------- items


@app.group(epilog="Example: digest items list --dropped --since 7d")
def items() -> None:
    """Stored items and the topics' verdicts on them."""


@items.command("list", epilog="Example: digest items list --since 7d --dropped --json")
@click.option("--since", metavar="DURATION", help="Published within this long (e.g. 7d, 12h).")
@click.option("--kept", "kept", flag_value="kept", help="Only items a topic kept.")
@click.option("--dropped", "kept", flag_value="dropped", help="Only items no topic kept.")
@click.option("--topic", metavar="T", help="Only this topic's verdicts count.")
@click.option("--limit", default=200, show_default=True, help="At most this many items.")
@click.option("--json", "as_json", is_flag=True, help="A JSON list instead of lines.")
def items_list(
    since: str | None, kept: str | None, topic: str | None, limit: int, as_json: bool
) -> None:
    """Stored items, newest first, with their score and verdict per topic. The id is the one
    every `digest draft` command takes."""
    from digest.store.listing import list_items

    settings = STATE.settings()
    if topic is not None and topic not in settings.topics:
        raise UsageError(f"unknown topic {topic!r} (topics: {', '.join(settings.topics)})")
    start = None
    if since:
        try:
            start = datetime.now(UTC) - parse_duration(since)
        except ValueError as exc:
            raise UsageError(f"--since: {exc}") from None
    store = _store()
    with store.connect() as conn:
        rows = list_items(
            conn,
            since=start,
            kept={"kept": True, "dropped": False}.get(kept or ""),
            topic=topic,
            limit=limit,
        )
    if as_json:
        doc = [
            {
                "id": r.stored.id,
                "title": r.stored.item.title,
                "feed": r.stored.source,
                "url": r.stored.item.url,
                "published": r.stored.item.published.isoformat(),
                "topics": {t: {"score": s, "kept": k} for t, (s, k) in sorted(r.topics.items())},
            }
            for r in rows
        ]
        click.echo(json.dumps(doc, indent=2, ensure_ascii=False))
        return
    if not rows:
        out.print("no items", markup=False)
        return
    for r in rows:
        verdict = ", ".join(r.kept_by) or "dropped"
        best = max((s for s, _ in r.topics.values()), default=0.0)
        out.print(
            f"{r.stored.id:>6}  {r.stored.item.published:%Y-%m-%d}  {verdict:<24} "
            f"{best:>6.2f}  {r.stored.item.title}  ({r.stored.source})",
            markup=False,
        )


# --------------------------------------------------------------------------- draft


def _print_draft(view: DraftView) -> None:
    d = view.draft
    state = (
        f"approved by {d.approved_by} at {d.approved_at:%Y-%m-%d %H:%M} UTC"
        if (d.approved and d.approved_at)
        else "not approved"
    )
    entries = view.entry_list()
    out.print(
        f"draft of issue #{view.number} — built {d.built_at:%Y-%m-%d %H:%M} UTC, "
        f"{len(entries)} entries, {state}",
        markup=False,
    )
    if d.note:
        first = d.note.strip().splitlines()[0]
        out.print(f"note: {first}" + (" …" if "\n" in d.note.strip() else ""), markup=False)
    else:
        out.print("note: none (digest draft note --file F)", markup=False)
    edited = {e.item_id for e in view.entries if e.summary is not None}
    added = {e.item_id for e in view.entries if e.origin == "editor"}
    for n, e in enumerate(entries, 1):
        marks = []
        if e.item_id == view.content.lead_item_id:
            marks.append("lead")
        if e.item_id in added:
            marks.append("added")
        if e.item_id in edited:
            marks.append("summary edited")
        extra = f"  [{', '.join(marks)}]" if marks else ""
        out.print(
            f"{n:>3}. id {e.item_id:<6} {e.topic_id:<18} {e.title}  ({e.source}){extra}",
            markup=False,
        )
    out.print("near misses (best first; add with: digest draft add ID --topic T):", markup=False)
    if not view.near_misses:
        out.print("     none", markup=False)
    for c in view.near_misses:
        why = _why(c)
        out.print(
            f"     id {c.item_id:<6} {c.topic_id:<18} {c.score:6.2f}  {c.title}  "
            f"({c.source}; {why})",
            markup=False,
        )
    if view.new_since:
        out.print("new since the draft (not in it):", markup=False)
        for c in view.new_since:
            out.print(
                f"     id {c.item_id:<6} {c.topic_id:<18} {c.score:6.2f}  {c.title}  ({c.source})",
                markup=False,
            )


def _why(c: Candidate) -> str:
    """Why a near miss is offered: the rules' score against the threshold, or the model."""
    rules = f"rules {c.score:.2f} < threshold {c.threshold:g}"
    model = f"the model rates it {c.probability or 0:.2f} (floor {c.floor or 0:g})"
    if c.origin == "limit":
        return "kept, over the limit"
    if c.origin == "learned":
        return f"{model}; {rules}"
    return f"{rules}; {model}" if c.probability is not None else rules


def _draft_json(view: DraftView) -> dict[str, Any]:
    d = view.draft

    def candidate(c: Candidate) -> dict[str, Any]:
        return {
            "id": c.item_id,
            "title": c.title,
            "topic": c.topic_id,
            "score": c.score,
            # Where it came from: "rules" (score below "threshold"), "limit" (kept, over the
            # per-topic limit), "learned" (the model's "probability" at or above "floor"), "new".
            "source": c.origin,
            "probability": c.probability,
            "threshold": c.threshold,
            "floor": c.floor,
        }

    return {
        "number": view.number,
        "approved": d.approved,
        "note": d.note,
        "entries": [
            {
                "id": e.item_id,
                "title": e.title,
                "topic": e.topic_id,
                "pinned": e.item_id == view.content.lead_item_id,
            }
            for e in view.entry_list()
        ],
        "near_misses": [candidate(c) for c in view.near_misses],
        "new_since_draft": [candidate(c) for c in view.new_since],
        "approved_by": d.approved_by,
        "approved_at": _iso(d.approved_at),
        "built_at": _iso(d.built_at),
    }


@app.group(
    invoke_without_command=True,
    epilog="Example: digest draft   (then: digest draft drop 12; digest draft approve)",
)
@click.pass_context
def draft(ctx: click.Context) -> None:
    """Build (or refresh) the next issue as a draft and print it: numbered entries with item
    ids and topics, then the near misses, best first, and the items new since the draft."""
    if ctx.invoked_subcommand is not None:
        return
    from digest.pipeline.draft import build_draft_exclusive

    settings = STATE.settings()
    store = _store()
    view, created = build_draft_exclusive(settings, store)
    if view is None:
        out.print("no new items: nothing to draft", markup=False)
        return
    if created:
        err.print(f"built the draft of issue #{view.number}", markup=False)
    _print_draft(view)


@draft.command("show", epilog="Example: digest draft show --json")
@click.option("--json", "as_json", is_flag=True, help="One JSON document.")
def draft_show(as_json: bool) -> None:
    """The draft as it stands (exit 2 when there is none)."""
    from digest.pipeline.draft import require

    view = require(STATE.settings(), _store())
    if as_json:
        click.echo(json.dumps(_draft_json(view), indent=2, ensure_ascii=False))
    else:
        _print_draft(view)


@draft.command("drop", epilog="Example: digest draft drop 12")
@click.argument("item_id", type=int)
@as_option
def draft_drop(item_id: int, as_: str | None) -> None:
    """Take an entry out of the draft (recorded as the editor's "drop")."""
    from digest.pipeline.desk import drop

    entry = drop(STATE.settings(), _store(), item_id, editor=_editor(as_))
    out.print(f"dropped {item_id}: {entry.title}", markup=False)


@draft.command("add", epilog="Example: digest draft add 31 --topic data_protection")
@click.argument("item_id", type=int)
@click.option("--topic", required=True, metavar="T", help="The section it goes in.")
@as_option
def draft_add(item_id: int, topic: str, as_: str | None) -> None:
    """Add any stored item to the draft (a near miss or not), under topic T."""
    from digest.pipeline.desk import add

    stored = add(STATE.settings(), _store(), item_id, topic=topic, editor=_editor(as_))
    out.print(f"added {item_id} under {topic}: {stored.item.title}", markup=False)


@draft.command("pin", epilog="Example: digest draft pin 12")
@click.argument("item_id", type=int)
@as_option
def draft_pin(item_id: int, as_: str | None) -> None:
    """Make an entry the lead story: first, with a larger treatment in the email."""
    from digest.pipeline.desk import pin

    entry = pin(STATE.settings(), _store(), item_id, editor=_editor(as_))
    out.print(f"pinned {item_id} as the lead: {entry.title}", markup=False)


@draft.command("summary", epilog="Example: digest draft summary 12 --file summary.txt")
@click.argument("item_id", type=int)
@click.option(
    "--file",
    "file",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="The new summary (plain text; '-' reads standard input).",
)
@as_option
def draft_summary(item_id: int, file: Path, as_: str | None) -> None:
    """Replace an entry's summary with your own text."""
    from digest.pipeline.desk import set_summary

    set_summary(STATE.settings(), _store(), item_id, _read(file), editor=_editor(as_))
    out.print(f"summary of {item_id} replaced", markup=False)


@draft.command("note", epilog="Example: digest draft note --file note.md")
@click.option(
    "--file",
    "file",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="A few lines of Markdown ('-' reads standard input; an empty file removes the note).",
)
@as_option
def draft_note(file: Path, as_: str | None) -> None:
    """The editor's introduction, on top of the email, the web page and the Atom entry."""
    from digest.pipeline.desk import set_note

    text = _read(file)
    set_note(STATE.settings(), _store(), text, editor=_editor(as_))
    out.print("note removed" if not text.strip() else "note saved", markup=False)


@draft.command("test", epilog="Example: digest draft test editor@example.org")
@click.argument("emails", nargs=-1, required=True, metavar="EMAIL...")
def draft_test(emails: tuple[str, ...]) -> None:
    """Send the draft, exactly as a subscriber gets it, to these addresses only, subject
    "[TEST] ...". Never a delivery; no subscriber is touched."""
    from digest.pipeline.desk import send_test

    report = send_test(STATE.settings(), _store(), list(emails))
    failed = 0
    for address, error in report:
        if error is None:
            out.print(f"test sent to {address}", markup=False)
        else:
            failed += 1
            err.print(f"error: {address}: test not sent: {error}", markup=False)
    if failed:
        sys.exit(1)


@draft.command("approve", epilog="Example: digest draft approve --as editor@example.org")
@as_option
def draft_approve(as_: str | None) -> None:
    """Approve the draft as it stands: the next `digest send` (or the daemon) delivers it."""
    from digest.pipeline.desk import approve

    view = approve(STATE.settings(), _store(), editor=_editor(as_))
    out.print(
        f"issue #{view.number} approved by {view.draft.approved_by}: the next send delivers it",
        markup=False,
    )


@draft.command("discard", epilog="Example: digest draft discard")
@as_option
def draft_discard(as_: str | None) -> None:
    """Throw the draft away; the next `digest draft` builds a fresh one from the same items."""
    from digest.pipeline.desk import discard

    number = discard(STATE.settings(), _store(), editor=_editor(as_))
    out.print(f"draft of issue #{number} discarded", markup=False)
