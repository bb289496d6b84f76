"""fetch, preview, send, run, check: the everyday commands."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from digest.cli.app import STATE, app, err, out
from digest.config import Settings
from digest.errors import DigestError, UsageError
from digest.infra.signals import stop_on_signals
from digest.models import RunCounts

if TYPE_CHECKING:
    from rich.progress import TaskID

    from digest.pipeline import Progress as ProgressFn
    from digest.store import Store
    from digest.store.locks import Lease

# The pipeline (and every stage under it), the store and the progress bar are imported inside
# the commands that use them, so that `digest --help` and the other commands start quickly.

_STAGES = {"fetch": "feeds", "summarize": "summaries", "send": "messages"}


@contextmanager
def _progress_bar() -> Iterator[ProgressFn | None]:
    """A rich progress bar on stderr (nothing when stderr is not a terminal or with --quiet)."""
    if STATE.quiet or not err.is_terminal:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    bar = Progress(
        TextColumn("{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=err,
        transient=True,
    )
    tasks: dict[str, TaskID] = {}

    def update(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = bar.add_task(_STAGES.get(stage, stage), total=total)
        bar.update(tasks[stage], completed=done, total=total)

    with bar:
        yield update


def _store(settings: Settings) -> Store:
    from digest.store import open_store

    return open_store(settings.storage.url)


@contextmanager
def _locked(settings: Settings, store: Store) -> Iterator[Lease]:
    """One digest at a time on a database: a second one waits ``lock_wait`` then exits 2."""
    from digest.store.locks import exclusive

    lease = settings.daemon.lock_lease.delta
    wait = settings.daemon.lock_wait.seconds
    with exclusive(store, lease=lease, wait=wait) as held:
        yield held


@contextmanager
def _graceful() -> Iterator[threading.Event]:
    """SIGTERM / Ctrl-C set a stop flag: the run finishes its unit (one feed, one message),
    records it, and returns; what is left stays pending for the next run."""

    def announce(name: str) -> None:
        err.print(f"{name}: finishing the current unit, then stopping")

    with stop_on_signals(threading.Event(), announce=announce, second_interrupts=True) as stop:
        yield stop


def _stopped_exit(stop: threading.Event) -> None:
    if stop.is_set():
        err.print("stopped before the end: run the same command again to resume", markup=False)
        sys.exit(1)


def _failed_messages_exit(counts: RunCounts) -> None:
    """Exit 1 when a reader's message failed in this run (the others were sent): a script or a
    timer unit then sees that something needs a look, without a traceback."""
    if counts.failed:
        err.print(
            f"{counts.failed} message(s) failed: digest deliveries lists each with its reason",
            markup=False,
        )
        sys.exit(1)


def _failed_feeds(counts: RunCounts) -> None:
    for url, reason in counts.failures:
        out.print(f"  failed: {url}: {reason}", markup=False)
    shown = counts.item_failures[:20]  # a flood of bad items must not flood the terminal
    for where, reason in shown:
        out.print(f"  item failed: {where[:200]}: {reason}", markup=False)
    if len(counts.item_failures) > len(shown):
        more = len(counts.item_failures) - len(shown)
        out.print(f"  ... and {more} more failed item(s): see `digest status`", markup=False)


def _issue_path(settings: Settings, number: int) -> Path:
    return Path(settings.delivery.outbox_dir) / str(number) / "index.html"


# --------------------------------------------------------------------------- fetch


@app.command(epilog="Example: digest fetch --force")
@click.option(
    "--force",
    is_flag=True,
    help="Fetch every feed now, ignoring backoff and caches (validators are still sent).",
)
def fetch(force: bool) -> None:
    """Fetch the feeds, store new items and decide their topics (summaries come with the issue).

    Ends with one line: feeds ok / failed / not modified (the server's 304) / unchanged (the
    same body again), new items, kept per topic; then each failed feed with its error. A failing
    feed never stops the others; the exit code is 1 when every feed fetched failed.
    """
    from digest.pipeline.collect import collect

    settings = STATE.settings()
    store = _store(settings)
    # Under the lock too: a fetch storing items while an issue is being built could leave
    # them behind the issue's period, in no issue at all.
    with _graceful() as stop, _locked(settings, store), _progress_bar() as progress:
        counts = collect(settings, store, progress=progress, force=force, stop=stop)
    kept = ", ".join(f"{t} {n}" for t, n in counts.kept_per_topic) or "none"
    out.print(
        f"feeds: {counts.feeds_ok} ok, {counts.feeds_failed} failed, "
        f"{counts.feeds_not_modified} not modified"
        + (f", {counts.feeds_unchanged} unchanged" if counts.feeds_unchanged else "")
        + f"; items: {counts.items_new} new"
        + (f", {counts.items_failed} failed" if counts.items_failed else "")
        + (f", {counts.items_over_cap} over the per-feed cap" if counts.items_over_cap else "")
        + f"; kept: {kept}; summarized: {counts.summarized}",
        markup=False,
    )
    _failed_feeds(counts)
    _stopped_exit(stop)
    _no_feed_exit(counts)


def _no_feed_exit(counts: RunCounts) -> None:
    """Exit 1 when feeds were due and not one answered (the network, a proxy, DNS is down),
    by the rule the daemon's health uses: one feed failing among others is the feed's problem,
    shown above; all of them failing is the machine's, and a timer unit or cron should see it."""
    if not counts.feeds_failed:
        return
    from digest.infra.metrics import run_failure

    problem = run_failure("fetch", counts)
    if problem:
        err.print(f"error: {problem}: check this machine's network and DNS", markup=False)
        sys.exit(1)


# --------------------------------------------------------------------------- preview


@app.command(epilog="Example: digest preview --out /tmp/next.html")
@click.option(
    "--out",
    "out_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write to this file instead of stdout.",
)
@click.option("--text", is_flag=True, help="The plain-text part instead of the HTML email.")
def preview(out_file: Path | None, text: bool) -> None:
    """Render the next issue from what is stored now (with [review] mode = "required", the draft
    under review as edited, if there is one); records and sends nothing."""
    from digest.pipeline.draft import current
    from digest.pipeline.issue import build_issue, generic_parts

    settings = STATE.settings()
    store = _store(settings)
    view = current(settings, store) if settings.review.required else None
    content = view.content if view is not None else build_issue(settings, store, record=False)
    if content is None:
        err.print("no new items: nothing to preview")
        return
    html, plain, subject = generic_parts(settings, content)
    body = plain if text else html
    if out_file is None:
        sys.stdout.write(body)
        return
    try:
        out_file.write_text(body, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{out_file}: cannot write: {exc.strerror}") from exc
    err.print(
        f"issue #{content.number} preview ({content.item_count} items, subject {subject!r}) "
        f"written to {out_file}",
        markup=False,
    )


# --------------------------------------------------------------------------- send / run


def _report_send(settings: Settings, store: Store, counts: RunCounts, *, dry_run: bool) -> None:
    if counts.waiting is not None and counts.issue_number is None:
        # [review] mode = "required": nothing goes out before an editor approves the draft.
        out.print(
            f"issue #{counts.waiting} is waiting for approval "
            "(digest draft show; digest draft approve)",
            markup=False,
        )
        return
    if counts.issue_number is None:
        line = "no new items: nothing sent"
        from digest.store.issues import list_issues

        with store.connect() as conn:
            last = list_issues(conn, limit=1)
        if last and settings.delivery.mode == "outbox":
            line += f" (last issue: {_issue_path(settings, last[0].number)})"
        out.print(line, markup=False)
        return
    if dry_run:
        from digest.store.subscribers import count_by_status

        with store.connect() as conn:
            active = count_by_status(conn).get("active", 0)
        out.print(
            f"dry run: issue #{counts.issue_number} would be sent to {active} active "
            "subscriber(s); nothing stored or sent",
            markup=False,
        )
        return
    where = ""
    if settings.delivery.mode == "outbox":
        where = f": {_issue_path(settings, counts.issue_number)}"
    out.print(
        f"issue #{counts.issue_number}{where} — messages {counts.sent} sent, "
        f"{counts.retry} to retry, {counts.failed} failed"
        + (f", {counts.bounced} subscriber(s) marked bounced" if counts.bounced else ""),
        markup=False,
    )


@app.command(epilog="Example: digest send --dry-run")
@click.option(
    "--dry-run", is_flag=True, help="Build the issue and say what would happen; send nothing."
)
def send(dry_run: bool) -> None:
    """Finish any unfinished issue, then build and send the next one if there are new items."""
    from digest.pipeline import outgoing

    settings = STATE.settings()
    store = _store(settings)
    if store.is_sqlite or dry_run:
        # SQLite: one sender at a time, holding the database lock for the whole run.
        with _graceful() as stop, _locked(settings, store) as lease, _progress_bar() as progress:
            counts = outgoing.send(
                settings, store, dry_run=dry_run, progress=progress, stop=stop, lease=lease
            )
    else:
        # PostgreSQL: every `digest send` shares the delivery; one builds the next issue.
        from digest.pipeline import issue

        with _graceful() as stop, _progress_bar() as progress:
            counts = issue.send_together(
                settings,
                store,
                lease=settings.daemon.lock_lease.delta,
                progress=progress,
                stop=stop,
            )
    _report_send(settings, store, counts, dry_run=dry_run)
    if counts.items_failed:
        out.print(f"items: {counts.items_failed} failed (recorded on each item)", markup=False)
        _failed_feeds(counts)
    _stopped_exit(stop)
    _failed_messages_exit(counts)


@app.command(epilog="Example: digest --config config/demo.toml run --once")
@click.option("--once", is_flag=True, help="Fetch then send once, and exit (no daemon).")
@click.option("--dry-run", is_flag=True, help="With --once: send nothing, store no issue.")
def run(once: bool, dry_run: bool) -> None:
    """Run the daemon (fetch and send on the configured crontabs), or one round with --once."""
    if not once:
        if dry_run:
            raise click.UsageError("--dry-run only goes with --once")
        from digest.infra.memory import limit_malloc_arenas
        from digest.schedule import run_daemon

        # Before any thread starts: a daemon that runs for months must not creep (see memory.py).
        limit_malloc_arenas()
        sys.exit(run_daemon(STATE.config_path))
    from digest.pipeline.outgoing import run_once

    settings = STATE.settings()
    store = _store(settings)
    with _graceful() as stop, _locked(settings, store), _progress_bar() as progress:
        counts = run_once(settings, store, dry_run=dry_run, progress=progress, stop=stop)
    from digest.report import format_counts

    err.print(format_counts(counts), markup=False)
    _failed_feeds(counts)
    _report_send(settings, store, counts, dry_run=dry_run)
    _stopped_exit(stop)
    _failed_messages_exit(counts)


# --------------------------------------------------------------------------- check


def _private_feeds(settings: Settings) -> list[str]:
    """Feeds whose address is written as one every fetch would refuse (the fetch's own rule,
    ``netguard.address_refusal``)."""
    from digest.netguard import literal_refusal

    lines = []
    for i, f in enumerate(settings.feeds):
        # Cloud metadata addresses never get this far: the config refuses them as feeds.
        kind = literal_refusal(f.url, allow_private=settings.fetch.allow_private or f.allow_private)
        if kind is not None:
            lines.append(
                f"feeds[{i}].url: {f.url} is a {kind} address: fetching it is refused unless "
                "the feed sets allow_private = true (an intranet feed)"
            )
    return lines


def _open_files_warnings(settings: Settings) -> list[str]:
    """A hard open-files limit below what ``[fetch] concurrency`` connections need: the fetch
    raises its soft limit up to the hard one (``httpclient.ensure_open_files``), not past it."""
    try:
        import resource
    except ImportError:
        return []
    from digest.httpclient import OPEN_FILES_MARGIN

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    needed = settings.fetch.concurrency + OPEN_FILES_MARGIN
    if hard == resource.RLIM_INFINITY or hard >= needed:
        return []
    return [
        f"fetch.concurrency = {settings.fetch.concurrency} needs about {needed} open files; "
        f"this user's hard limit is {hard}: raise it (systemd: LimitNOFILE=) or lower concurrency"
    ]


@app.command(epilog="Example: digest --config config/digest.toml check")
def check() -> None:
    """Validate the configuration, the secrets and credentials in the environment, and the
    topics' regression examples; list feeds, topics and subscribers. Exits 2 listing every
    error (an example that no longer holds, a secret too short); warnings do not fail it."""
    from digest.config.checks import environment_findings
    from digest.pipeline.wiring import make_matcher, make_rules, make_signer
    from digest.topics import check_examples

    settings = STATE.settings()
    topics = settings.topic_defs()
    found = environment_findings(settings)
    try:
        make_signer(settings)  # the DKIM key is read and parsed as a send would
    except DigestError as exc:
        found.errors.append(str(exc))
    if settings.render.templates:
        from digest.render import check_templates

        # A send falls back to the shipped template; check says the operator's look is broken.
        for problem in check_templates(settings.render.templates, settings.brand.to_model()):
            found.errors.append(f"render.templates: {problem}")
    found.warnings += _open_files_warnings(settings)
    for line in found.warnings:
        err.print(f"warning: {line}", markup=False)
    from digest.pipeline.learning import load_model

    try:
        model = load_model(settings, strict=True)
    except DigestError as exc:  # a topic model that cannot be read fails later too
        found.errors.append(str(exc))
        model = None
    for tid, section in settings.topics.items():
        if model is not None and section.learned != "off" and tid not in model.topics:
            err.print(
                f"warning: topics.{tid}: learned = {section.learned!r} but the topic model knows "
                f"only {', '.join(model.topics)}: retrain it with `digest topics learn`",
                markup=False,
            )
    failures = check_examples(make_matcher(settings), topics, model)
    try:
        make_rules(settings)  # [filters] block and the feeds' include/exclude, compiled as a fetch
    except DigestError as exc:
        failures.append(str(exc))
    failures += _private_feeds(settings)
    if failures or found.errors:
        for line in found.errors:
            err.print(f"error: {line}", markup=False)
        for line in failures:
            err.print(f"error: {settings.source}: {line}", markup=False)
        sys.exit(2)
    out.print(f"config: {settings.source} ok", markup=False)
    out.print(f"feeds ({len(settings.feeds)}):", markup=False)
    for f in settings.feeds:
        scope = f" topics={','.join(f.topics)}" if f.topics else ""
        always = f" always={','.join(f.always)}" if f.always else ""
        rules = f" include={len(f.include)}" if f.include else ""
        rules += f" exclude={len(f.exclude)}" if f.exclude else ""
        out.print(f"  {f.name or '-'}: {f.url}{scope}{always}{rules}", markup=False)
    if settings.filters.block:
        out.print(f"filters: {len(settings.filters.block)} block rule(s)", markup=False)
    if settings.digest.languages:
        out.print(f"languages: {', '.join(settings.digest.languages)}", markup=False)
    out.print(f"topics ({len(topics)}):", markup=False)
    for t in topics:
        examples = f", {len(t.examples)} examples hold" if t.examples else ""
        out.print(
            f"  {t.id}: {t.title} ({len(t.include)} include, {len(t.exclude)} exclude{examples})",
            markup=False,
        )
    from digest.store.subscribers import count_by_status

    store = _store(settings)
    with store.connect() as conn:
        by_status = count_by_status(conn)
    summary = ", ".join(f"{n} {s}" for s, n in sorted(by_status.items())) or "none"
    out.print(f"subscribers: {summary}", markup=False)
    r = settings.review
    if r.required:
        editors = ", ".join(r.editors) or "none: command line only, the web desk is off"
        out.print(
            f"review: required; editors: {editors}; draft: {r.draft or 'with the send job'}; "
            f"on deadline: {r.on_deadline}; near-miss floor {r.floor:g}; "
            f"alert after {r.alert_after}",
            markup=False,
        )
        if r.editors and not settings.digest.base_url:
            err.print(
                f"warning: {settings.source}: review.editors: [digest] base_url is not set, so "
                "the daemon cannot mail editors a link to the desk",
                markup=False,
            )
    else:
        out.print("review: auto (issues go out as the filter builds them)", markup=False)
    keep = settings.storage.retention
    kept = f"items {keep.items}, deliveries {keep.deliveries}, cache {keep.cache}, "
    kept += f"fingerprints {keep.fingerprints}"
    when = f"pruned on '{settings.schedule.prune}'" if keep.enabled else "nothing is pruned"
    out.print(f"retention: {kept} ({when})", markup=False)
    out.print(
        f"delivery: {settings.delivery.mode}"
        + (f" to {settings.delivery.outbox_dir}/" if settings.delivery.mode == "outbox" else "")
        + f"; storage: {store.url}; checked at {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        markup=False,
    )
    from digest.pipeline.deliverability import bounce_warnings, provider_warnings, size_warnings

    # Mailbox-provider rules: warnings only, a send is never blocked by them.
    found_later = [*provider_warnings(settings), *size_warnings(settings)]
    for warning in found_later + bounce_warnings(settings):
        err.print(f"warning: {warning}", markup=False)
