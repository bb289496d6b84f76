"""Operators' commands: status (feed health, recent issues, daemon lock), prune, feeds
list/import/export.

The config file is the editors' source of truth for feeds, so `feeds import` appends
``[[feeds]]`` entries to it (text only, the rest of the file untouched) and says so.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from digest import config
from digest.cli.app import STATE, app, err, out
from digest.errors import ConfigError, DigestError, UsageError
from digest.models import SubscriberStatus

if TYPE_CHECKING:
    from rich.text import Text

    from digest.store.status import FeedReport, IssueReport

# The store, OPML and rich tables are imported inside the commands that use them, so that
# every other command (`digest fetch` first) starts without them.


def _ago(value: datetime | None, now: datetime) -> str:
    if value is None:
        return "never"
    delta = now - value
    future = delta < timedelta(0)
    secs = abs(delta.total_seconds())
    if secs < 60:
        text = f"{int(secs)}s"
    elif secs < 3600:
        text = f"{int(secs // 60)}m"
    elif secs < 172800:
        text = f"{int(secs // 3600)}h{int(secs % 3600 // 60):02d}"
    else:
        text = f"{int(secs // 86400)}d"
    return f"in {text}" if future else f"{text} ago"


def _next_try(report: FeedReport, now: datetime) -> str:
    st = report.state
    if st is None:
        return "next run"
    if st.disabled:
        return "never (disabled)"
    if st.next_try is None or st.next_try <= now:
        return "next run"
    return _ago(st.next_try, now)


def _row(*cells: str) -> list[Text]:
    # Feed names, URLs and errors come from outside: "[...]" in them is text, never markup.
    from rich.text import Text

    return [Text(c) for c in cells]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


def _feed_json(r: FeedReport) -> dict[str, Any]:
    st = r.state
    return {
        "url": r.url,
        "name": r.name,
        "fetched": st is not None and st.last_fetch is not None,
        "last_success": _iso(st.last_ok) if st else None,
        "last_error": st.last_error if st else None,
        "last_status": st.last_status if st else None,
        "consecutive_failures": st.failures if st else 0,
        "next_try": _iso(st.next_try) if st else None,
        "disabled": st.disabled if st else False,
        "moved_to": st.moved_to if st else None,
        "items_total": r.items_total,
        "items_kept": r.items_kept,
    }


def _issue_json(r: IssueReport) -> dict[str, Any]:
    return {
        "number": r.number,
        "created": _iso(r.created),
        "subject": r.subject,
        "status": r.status,
        "items": r.items,
        "deliveries": r.deliveries,
    }


@app.command(epilog="Example: digest status --issues 10")
@click.option("--issues", "issue_count", default=5, show_default=True, help="Recent issues shown.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of tables.")
def status(issue_count: int, as_json: bool) -> None:
    """Feed health (last success, last error, failures, next try, items) and recent issues."""
    from digest.store import bounces as bstore
    from digest.store import open_store
    from digest.store.drafts import open_draft
    from digest.store.items import MAX_ITEM_FAILURES, failed_items
    from digest.store.locks import holder_of, standbys
    from digest.store.status import feed_reports, issue_reports
    from digest.store.subscribers import count_by_status

    settings = STATE.settings()
    store = open_store(settings.storage.url)
    try:
        with store.connect() as conn:
            feeds = feed_reports(conn, [(f.url, f.name) for f in settings.feeds])
            issues = issue_reports(conn, limit=issue_count)
            found = count_by_status(conn)
            skipped_total, skipped = failed_items(conn, limit=10)
            bounces = bstore.counts(conn)
            draft = open_draft(conn)
        lock = holder_of(store)
        waiting = standbys(store)
    finally:
        store.close()
    # Every status, zeros included; "bounced": readers whose last deliveries all failed.
    people = {s.value: found.get(s.value, 0) for s in SubscriberStatus}
    now = datetime.now(UTC)
    daemon = None
    if lock is not None and not lock.expired:
        daemon = {"host": lock.host, "pid": lock.pid, "since": _iso(lock.since)}
    review: dict[str, Any] = {"mode": settings.review.mode, "draft": None}
    if draft is not None:
        review["draft"] = {
            "number": draft.number,
            "built_at": _iso(draft.built_at),
            "approved": draft.approved,
            "approved_by": draft.approved_by,
            "waiting": not draft.approved,
            "waiting_seconds": None
            if draft.approved
            else round((now - draft.created).total_seconds()),
        }
    if as_json:
        doc = {
            "daemon": daemon,
            "review": review,
            "standby": [{"host": w.host, "pid": w.pid, "since": _iso(w.since)} for w in waiting],
            "feeds": [_feed_json(r) for r in feeds],
            "issues": [_issue_json(r) for r in issues],
            "subscribers": people,
            "items_failed": {
                "total": skipped_total,
                "latest": [{"id": i, "title": t, "reason": why} for i, t, why in skipped],
            },
            "bounces": bounces,
        }
        click.echo(json.dumps(doc, indent=2, ensure_ascii=False))
        return
    if lock is not None and not lock.expired and lock.purpose == "build":
        out.print(f"Building an issue: {lock.describe()}", markup=False)
    elif lock is not None and not lock.expired:
        out.print(f"Daemon: running on {lock.describe()}", markup=False)
    else:
        out.print("Daemon: not running", markup=False)
    for w in waiting:
        out.print(f"Standby: {w.describe()}", markup=False)
    if draft is not None and not draft.approved:
        out.print(
            f"Review: issue #{draft.number} is waiting for approval "
            f"(draft built {_ago(draft.created, now)})",
            markup=False,
        )
    elif draft is not None:
        out.print(
            f"Review: issue #{draft.number} approved by {draft.approved_by}: "
            "the next send delivers it",
            markup=False,
        )
    _print_feeds(feeds, now)
    _print_issues(issues, now)
    shown = ", ".join(f"{n} {s}" for s, n in people.items() if n) or "none"
    out.print(f"Subscribers: {shown}", markup=False)
    if skipped_total:
        out.print(
            f"Items skipped (failed {MAX_ITEM_FAILURES} times or unusable): {skipped_total}",
            markup=False,
        )
        for item_id, title, why in skipped:
            out.print(f"  #{item_id} {title[:80]}: {why}", markup=False)
    out.print(
        "Bounces and complaints: " + ", ".join(f"{n} {kind}" for kind, n in bounces.items()),
        markup=False,
    )


@app.command(epilog="Example: digest prune --dry-run")
@click.option("--dry-run", is_flag=True, help="Count what would be removed; remove nothing.")
@click.option(
    "--batch",
    type=click.IntRange(1, 100_000),
    default=5000,
    show_default=True,
    help="Delivery rows per transaction (items: a fifth); smaller waits less on a busy SQLite.",
)
def prune(dry_run: bool, batch: int) -> None:
    """Remove items, delivery rows and cached summaries older than [storage] retention."""
    from digest.cli.core import _graceful, _stopped_exit
    from digest.pipeline.prune import format_pruned
    from digest.pipeline.prune import prune as run_prune
    from digest.store import open_store

    settings = STATE.settings()
    if not settings.storage.retention.enabled:
        out.print("nothing to prune: [storage] retention keeps everything forever", markup=False)
        return
    store = open_store(settings.storage.url)
    # No database lock: the daemon may be running; each batch is its own short transaction.
    try:
        with _graceful() as stop:
            counts = run_prune(settings, store, dry_run=dry_run, stop=stop, batch=batch)
    finally:
        store.close()
    out.print(format_pruned(counts, dry_run=dry_run), markup=False)
    _stopped_exit(stop)


def _print_feeds(feeds: list[FeedReport], now: datetime) -> None:
    from rich.table import Table

    failing = sum(1 for r in feeds if r.state and r.state.failures and not r.state.disabled)
    disabled = sum(1 for r in feeds if r.state and r.state.disabled)
    table = Table(
        title=f"Feeds: {len(feeds)} configured, {failing} failing, {disabled} disabled",
        title_justify="left",
    )
    for name in ("Feed", "Last success", "Failures", "Last error", "Next try", "Items kept/total"):
        table.add_column(name, overflow="fold")
    for r in feeds:
        st = r.state
        label = r.name or r.url
        if r.name:
            label += f"\n{r.url}"
        if st and st.disabled:
            label += "\n(disabled: 410 Gone)"
        if st and st.moved_to:
            label += f"\n(moved to {st.moved_to})"
        table.add_row(
            *_row(
                label,
                _ago(st.last_ok, now) if st else "never fetched",
                str(st.failures) if st else "0",
                (st.last_error or "") if st else "",
                _next_try(r, now),
                f"{r.items_kept}/{r.items_total}",
            )
        )
    out.print(table)


def _print_issues(issues: list[IssueReport], now: datetime) -> None:
    if not issues:
        out.print("Issues: none yet", markup=False)
        return
    from rich.table import Table

    table = Table(title="Recent issues", title_justify="left")
    for name in ("#", "Created", "Status", "Items", "Deliveries", "Subject"):
        table.add_column(name, overflow="fold")
    for r in issues:
        deliveries = ", ".join(f"{n} {state}" for state, n in sorted(r.deliveries.items()))
        table.add_row(
            *_row(
                str(r.number),
                f"{r.created:%Y-%m-%d %H:%M} UTC ({_ago(r.created, now)})",
                r.status,
                str(r.items),
                deliveries or "none",
                r.subject,
            )
        )
    out.print(table)


# --------------------------------------------------------------------------- feeds


@app.group(epilog="Example: digest feeds import subscriptions.opml", invoke_without_command=True)
@click.pass_context
def feeds(ctx: click.Context) -> None:
    """The configured feeds: list them (the default), import an OPML file into the config,
    export OPML."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(feeds_list)


def _moved() -> dict[str, str]:
    """Configured URL -> where it moved for good (301/308), from the store when there is one."""
    from digest.store import open_store
    from digest.store.db import database_url
    from digest.store.feeds import list_feeds

    settings = STATE.settings()
    try:
        url = database_url(settings.storage.url)
        if url.get_backend_name() == "sqlite" and not Path(url.database or "").is_file():
            return {}  # never fetched: no database to create just to list the feeds
        # Read only: listing feeds neither creates nor upgrades a database.
        store = open_store(settings.storage.url, create=False)
        try:
            with store.connect() as conn:
                rows = list_feeds(conn, [f.url for f in settings.feeds])
        finally:
            store.close()
    except DigestError:  # an unreadable or older database: nothing known to have moved
        return {}
    return {r.url: r.moved_to for r in rows if r.moved_to and r.moved_to != r.url}


@feeds.command("list", epilog="Example: digest feeds list")
def feeds_list() -> None:
    """Configured feeds: name, URL, the topics they may feed and their labels; a feed that
    moved for good (301/308) shows its new address and the config entry to update."""
    from rich.table import Table

    settings = STATE.settings()
    moved = _moved()
    title = _row(f"{len(settings.feeds)} feeds in {settings.source}")[0]
    table = Table(title=title, title_justify="left")
    for name in ("Name", "URL", "Topics", "Labels"):
        table.add_column(name, overflow="fold")
    for f in settings.feeds:
        url = f.url if f.url not in moved else f"{f.url}\n-> moved to {moved[f.url]}"
        table.add_row(*_row(f.name or "", url, ", ".join(f.topics) or "all", ", ".join(f.labels)))
    out.print(table)
    for i, f in enumerate(settings.feeds):
        if f.url in moved:
            out.print(
                f"update the config: feeds[{i}] ({f.name or f.url}) url = {moved[f.url]!r} "
                f"(was {f.url!r}; moved permanently)",
                markup=False,
            )


@feeds.command("import", epilog="Example: digest feeds import subscriptions.opml")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Show what would be added; change nothing.")
@click.option(
    "--allow-local",
    is_flag=True,
    help="Also import local files (file: URLs, paths); by default only http(s) feeds.",
)
def feeds_import(file: Path, dry_run: bool, allow_local: bool) -> None:
    """Append the OPML file's feeds to the config file as [[feeds]] entries.

    Only http(s) feeds are imported (local files with --allow-local); other schemes, invalid
    URLs and cloud metadata addresses are refused, each named on one line (exit 1).
    """
    from digest.reader import opml
    from digest.urls import feed_url_problem

    settings = STATE.settings()  # the current config must be valid before we add to it
    target = opml.feeds_file(config.config_path(STATE.config_path))
    outlines = []
    refused = 0
    for o in opml.read_opml(file):
        problem = feed_url_problem(o.url, allow_local=allow_local)
        if problem is None:
            outlines.append(o)
            continue
        refused += 1
        err.print(f"refused: {o.url[:200]!r}: {problem}", markup=False)
    if refused and not outlines:
        raise UsageError(f"{file}: no feed could be imported ({refused} refused)")
    known = [f.url for f in settings.feeds]
    new = []
    for o in outlines:
        if not any(opml.same_feed(o.url, k) for k in known):
            new.append(o)
            known.append(o.url)
        else:
            out.print(f"skipped (already configured): {o.url}", markup=False)
    skipped = len(outlines) - len(new)
    # Folders and categories that name a topic (its id or title) are offered as its topics.
    topics = {tid.casefold(): tid for tid in settings.topics}
    topics.update({t.title.casefold(): tid for tid, t in settings.topics.items() if t.title})
    if not new:
        out.print(f"nothing to add: {len(outlines)} feeds in {file}, all already configured")
        return
    if dry_run:
        for o in new:
            ids, labels = opml.sort_categories(o.categories, topics)
            extra = f" ({o.title})" if o.title else ""
            extra += f" topics {list(ids)}" if ids else ""
            extra += f" labels {list(labels)}" if labels else ""
            out.print(f"would add {o.url}{extra}", markup=False)
        out.print(f"{len(new)} feeds would be added to {target} ({skipped} already configured)")
        return
    before = target.read_text(encoding="utf-8")
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    note = f"Imported from {file.name} on {stamp}"
    opml.append_text(target, opml.feeds_toml(new, note=note, topics=topics))
    try:
        config.load(STATE.config_path)
    except ConfigError:
        target.write_text(before, encoding="utf-8")  # leave the editors' file as it was
        raise
    offered = sum(1 for o in new if opml.sort_categories(o.categories, topics)[0])
    out.print(
        f"added {len(new)} feeds to {target} ({skipped} already configured"
        + (f", {refused} refused" if refused else "")
        + f"); {offered} with topics from their folders; the daemon fetches them from its next run",
        markup=False,
    )
    if refused:
        sys.exit(1)  # the good ones are in; the refused ones were each named above


@feeds.command("export", epilog="Example: digest feeds export feeds.opml")
@click.argument("file", required=False, type=click.Path(path_type=Path, dir_okay=False))
def feeds_export(file: Path | None) -> None:
    """Write the configured feeds as OPML 2.0 to FILE (default: standard output); a feed that
    moved for good (301/308) is written at its new address."""
    from digest.reader import opml

    settings = STATE.settings()
    data = opml.to_opml(
        settings.feed_specs(), title=f"{settings.digest.title} feeds", moved=_moved()
    )
    if file is None:
        click.echo(data.decode("utf-8"), nl=False)
        return
    file.write_bytes(data)
    out.print(f"wrote {len(settings.feeds)} feeds to {file}", markup=False)
