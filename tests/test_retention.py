"""Retention: ``digest prune`` removes what is older than ``[storage] retention`` in short batches
and keeps what the archive, dedup, sending and erasure need; the daemon runs it on its crontab."""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine
from hypothesis import given
from hypothesis import strategies as st
from pytest_httpserver import HTTPServer
from sqlalchemy import Connection, event, func, select, update

from conftest import run_cli
from digest import config
from digest.config import KeepFor, Settings
from digest.errors import UsageError
from digest.models import DeliveryState, FeedSpec, Item
from digest.pipeline.collect import collect
from digest.pipeline.deliver import deliver_issue
from digest.pipeline.prune import prune
from digest.schedule import Daemon
from digest.store import Store, open_store, schema
from digest.store.deliveries import insert_pending
from digest.store.drafts import record_decision
from digest.store.feeds import sync_feeds
from digest.store.issues import save_issue
from digest.store.items import insert_items
from digest.store.subscribers import add_subscriber
from test_daemon_clock import messages, serving, wait_until
from test_store_issues import content

#: Seeded ages are relative to this; `digest prune` on the command line reads the real clock.
NOW = datetime.now(UTC).replace(microsecond=0)
FEED = "https://news.example/feed"
DIGEST = [sys.executable, "-c", "from digest.cli import main; main()"]
READERS = ["ada@example.org", "bob@example.org", "cy@example.org"]


def write_config(folder: Path, retention: str, extra: str = "") -> Path:
    path = folder / "digest.toml"
    path.write_text(
        f"""
[storage]
url = "sqlite:///{folder}/var/digest.db"
retention = {retention}

[delivery]
outbox_dir = "{folder}/outbox"
{extra}
""",
        encoding="utf-8",
    )
    return path


RETENTION = '{ items = "30d", deliveries = "60d", cache = "30d" }'


def item(guid: str, url: str | None = None) -> Item:
    link = url or f"https://news.example/{guid}"
    return Item(FEED, guid, link, link, f"Title {guid}", NOW - timedelta(days=50))


@dataclasses.dataclass
class Site:
    settings: Settings
    store: Store
    config_path: Path
    ids: dict[str, int]

    def count(self, table: Any, *where: Any) -> int:
        with self.store.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar())

    def snapshot(self) -> dict[str, int]:
        return {name: self.count(t) for name, t in schema.metadata.tables.items()}


def seed(store: Store, now: datetime) -> dict[str, int]:
    """Three items (old, old but in an issue, recent), three readers, three issues: #1 old and
    done, #2 old but unfinished, #3 recent and done; cached summaries old and new; an erasure;
    bounce reports about #1 (old) and #3 (recent)."""
    ids: dict[str, int] = {}
    with store.begin() as conn:
        [feed] = sync_feeds(conn, [FeedSpec(FEED)], now=now - timedelta(days=400))
        ids["feed"] = feed.id
        [(ids["old"], _)] = insert_items(conn, feed.id, [item("old")], now=now - timedelta(days=40))
        [(ids["in_issue"], _)] = insert_items(
            conn, feed.id, [item("in-issue")], now=now - timedelta(days=40)
        )
        [(ids["recent"], _)] = insert_items(
            conn, feed.id, [item("recent")], now=now - timedelta(days=5)
        )
        readers = [add_subscriber(conn, a).id for a in READERS]
        for number, age, status in ((1, 70, "done"), (2, 70, "sending"), (3, 10, "done")):
            c = dataclasses.replace(
                content(number, ids["in_issue"] if number == 1 else ids["recent"]),
                created=now - timedelta(days=age),
            )
            issue_id = save_issue(
                conn, c, subject=f"#{number}", html=f"<p>{number}</p>", text=str(number)
            )
            ids[f"issue{number}"] = issue_id
            insert_pending(
                conn,
                issue_id,
                [(r, f"<{number}.{r}@x>") for r in readers],
                now - timedelta(days=age),
            )
            if status == "done":
                conn.execute(
                    update(schema.deliveries)
                    .where(schema.deliveries.c.issue_id == issue_id)
                    .values(state=DeliveryState.SENT.value)
                )
                conn.execute(
                    update(schema.issues)
                    .where(schema.issues.c.id == issue_id)
                    .values(status="done")
                )
        for key, age in (("old", 40), ("new", 2)):
            conn.execute(
                schema.llm_cache.insert().values(
                    key=key, summary="s", created=now - timedelta(days=age)
                )
            )
        conn.execute(
            schema.erased.insert().values(
                email_hash="h", key_rule="lower", erased_at=now - timedelta(days=900)
            )
        )
        for number, age in ((1, 65), (3, 9)):
            conn.execute(
                schema.bounces.insert().values(
                    subscriber_id=readers[0],
                    issue_id=ids[f"issue{number}"],
                    kind="soft",
                    report_id=f"<report-{number}@mx>",
                    received=now - timedelta(days=age),
                )
            )
    return ids


def sent_all(conn: Connection, issue_id: int) -> None:
    """Every row of a finished issue is settled (sent): an open row would keep the issue."""
    d = schema.deliveries
    conn.execute(update(d).where(d.c.issue_id == issue_id).values(state=DeliveryState.SENT.value))


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DIGEST_SECRET", "test-secret-" + "x" * 32)
    path = write_config(tmp_path, RETENTION)
    settings = config.load(path)
    store = open_store(settings.storage.url)
    ids = seed(store, NOW)
    yield Site(settings, store, path, ids)
    store.close()


def test_rows_older_than_the_retention_go_and_newer_ones_stay(site: Site) -> None:
    counts = prune(site.settings, site.store, now=NOW)

    assert (counts.deliveries, counts.issues, counts.items, counts.cache) == (3, 1, 1, 1)
    assert counts.bounces == 1  # the report about #1, received before the deliveries' cutoff
    with site.store.connect() as conn:
        items = {r.guid for r in conn.execute(select(schema.items.c.guid))}
        by_issue = dict(
            conn.execute(
                select(schema.deliveries.c.issue_id, func.count()).group_by(
                    schema.deliveries.c.issue_id
                )
            ).all()
        )
        issues = conn.execute(
            select(
                schema.issues.c.number, schema.issues.c.html, schema.issues.c.deliveries_pruned
            ).order_by(schema.issues.c.number)
        ).all()
        cache = {k for (k,) in conn.execute(select(schema.llm_cache.c.key))}
    # The recent item, and the old one issue #1 took (its archive page and explain need it).
    assert items == {"in-issue", "recent"}
    # Issue #1's rows are gone; #2 is unfinished (its rows make sending exactly-once); #3 is new.
    assert by_issue == {site.ids["issue2"]: 3, site.ids["issue3"]: 3}
    # Every issue stays, with its page; #1 says its rows are gone.
    assert [(n, html) for n, html, _ in issues] == [
        (1, "<p>1</p>"),
        (2, "<p>2</p>"),
        (3, "<p>3</p>"),
    ]
    assert [p is not None for *_, p in issues] == [True, False, False]
    assert cache == {"new"}
    assert site.count(schema.erased) == 1  # erased-address hashes are never pruned
    assert site.count(schema.subscribers) == len(READERS)
    assert site.count(schema.item_fingerprints) == 1
    with site.store.connect() as conn:
        bounced = [i for (i,) in conn.execute(select(schema.bounces.c.issue_id))]
    assert bounced == [site.ids["issue3"]]  # the recent issue's report stays with its rows

    again = prune(site.settings, site.store, now=NOW)
    assert (again.deliveries, again.items, again.cache, again.bounces) == (0, 0, 0, 0)


def test_a_dry_run_counts_what_a_prune_removes_and_changes_nothing(site: Site) -> None:
    before = site.snapshot()
    would = prune(site.settings, site.store, now=NOW, dry_run=True)
    assert site.snapshot() == before
    did = prune(site.settings, site.store, now=NOW)
    assert would.tables() == did.tables()
    assert would.issues == did.issues == 1


def test_a_pruned_item_is_not_stored_again_when_a_feed_still_lists_it(site: Site) -> None:
    prune(site.settings, site.store, now=NOW)
    with site.store.begin() as conn:
        # Same guid in its feed; another guid with the same canonical URL; a new item.
        assert insert_items(conn, site.ids["feed"], [item("old")], now=NOW) == []
        assert (
            insert_items(
                conn, site.ids["feed"], [item("moved", "https://news.example/old")], now=NOW
            )
            == []
        )
        [(_, fresh)] = insert_items(conn, site.ids["feed"], [item("old"), item("fresh")], now=NOW)
    assert fresh.guid == "fresh"


def test_fingerprints_kept_for_a_while_let_the_item_back_after_that(
    tmp_path: Path, site: Site
) -> None:
    prune(site.settings, site.store, now=NOW)
    later = NOW + timedelta(days=100)
    short = config.load(
        write_config(tmp_path, '{ items = "30d", deliveries = "60d", fingerprints = "90d" }')
    )
    assert prune(short, site.store, now=later).fingerprints == 1
    with site.store.begin() as conn:
        assert len(insert_items(conn, site.ids["feed"], [item("old")], now=later)) == 1


def test_forever_keeps_everything(tmp_path: Path, site: Site) -> None:
    keep = config.load(
        write_config(
            tmp_path,
            '{ items = "forever", deliveries = "Forever", cache = "forever", '
            'fingerprints = "forever" }',
        )
    )
    assert not keep.storage.retention.enabled
    before = site.snapshot()
    counts = prune(keep, site.store, now=NOW + timedelta(days=3650))
    assert counts.tables() == (
        ("deliveries", 0),
        ("items", 0),
        ("cache", 0),
        ("fingerprints", 0),
        ("bounces", 0),
    )
    assert site.snapshot() == before


def test_bounce_reports_go_with_the_deliveries_but_never_inside_the_soft_bounce_window(
    tmp_path: Path, site: Site
) -> None:
    """Delivery rows kept 40 days, soft bounces counted over 60: the report received 9 days
    ago stays (its issue's rows do too), and so does one 50 days old; the 65-day one goes."""
    with site.store.begin() as conn:
        reader = conn.execute(select(func.min(schema.subscribers.c.id))).scalar()
        conn.execute(
            schema.bounces.insert().values(
                subscriber_id=reader,
                issue_id=None,
                kind="soft",
                report_id="<report-50d@mx>",
                received=NOW - timedelta(days=50),
            )
        )
    short = config.load(
        write_config(
            tmp_path,
            '{ items = "forever", deliveries = "40d" }',
            '[bounces]\nsoft_window = "60d"\n',
        )
    )
    assert prune(short, site.store, now=NOW, dry_run=True).bounces == 1
    assert prune(short, site.store, now=NOW).bounces == 1
    with site.store.connect() as conn:
        left = {r for (r,) in conn.execute(select(schema.bounces.c.report_id))}
    assert left == {"<report-3@mx>", "<report-50d@mx>"}
    kept = config.load(write_config(tmp_path, '{ deliveries = "forever" }'))
    assert prune(kept, site.store, now=NOW + timedelta(days=3650)).bounces == 0


def test_an_issue_whose_deliveries_were_pruned_is_never_sent_again(site: Site) -> None:
    prune(site.settings, site.store, now=NOW)
    with pytest.raises(UsageError, match=r"issue #1: its delivery records were pruned"):
        deliver_issue(site.settings, site.store, 1)
    assert site.count(schema.deliveries, schema.deliveries.c.issue_id == site.ids["issue1"]) == 0


class StopAfter(threading.Event):
    """A stop flag that is set once it has been asked ``n`` times (SIGTERM mid-prune)."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.left = n

    def is_set(self) -> bool:
        self.left -= 1
        return self.left < 0 or super().is_set()


def test_the_stop_flag_ends_a_prune_between_batches_and_the_next_run_finishes(site: Site) -> None:
    first = prune(site.settings, site.store, now=NOW, batch=1, stop=StopAfter(2))
    assert first.stopped
    assert 0 < first.deliveries < 3  # a batch or two of one row, then the stop
    second = prune(site.settings, site.store, now=NOW, batch=1)
    assert not second.stopped
    assert (first.deliveries + second.deliveries, second.items, second.cache) == (3, 1, 1)


def test_a_writer_and_a_reader_are_not_blocked_while_prune_runs_in_small_batches(
    tmp_path: Path,
) -> None:
    path = write_config(tmp_path, RETENTION)
    settings = config.load(path)
    store = open_store(settings.storage.url)
    with store.begin() as conn:
        [feed] = sync_feeds(conn, [FeedSpec(FEED)], now=NOW)
        [(item_id, _)] = insert_items(conn, feed.id, [item("taken")], now=NOW)
        readers = [add_subscriber(conn, f"r{i}@example.org").id for i in range(400)]
        for number in range(1, 6):
            c = dataclasses.replace(content(number, item_id), created=NOW - timedelta(days=90))
            issue_id = save_issue(conn, c, subject="s", html="h", text="t", status="done")
            insert_pending(conn, issue_id, [(r, f"<{number}.{r}@x>") for r in readers], NOW)
            sent_all(conn, issue_id)
    # On SQLite the writer gives up after 2 s of waiting for the lock (the store's default is
    # 30 s): a prune holding the database for longer than that would fail it. On PostgreSQL
    # the writer's rows are not the prune's: it never waits.
    other = open_store(settings.storage.url)
    if other.is_sqlite:
        other.engine.dispose()
        event.listen(
            other.engine,
            "connect",
            lambda c, _r: c.execute("PRAGMA busy_timeout=2000"),
            insert=False,
        )
    done = threading.Event()
    written: list[int] = []
    read: list[int] = []
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            n = 0
            while not done.is_set() or n < 5:
                with other.begin() as conn:
                    insert_items(conn, feed.id, [item(f"w{n}")], now=NOW)
                n += 1
                written.append(n)
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    def reader() -> None:
        try:
            while not done.is_set():
                with other.connect() as conn:
                    read.append(
                        int(
                            conn.execute(
                                select(func.count()).select_from(schema.deliveries)
                            ).scalar()
                        )
                    )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
    for t in threads:
        t.start()
    try:
        counts = prune(settings, store, now=NOW, batch=25)
        written_during = len(written)
    finally:
        done.set()
        for t in threads:
            t.join(60)
    store.close()
    other.close()
    assert errors == []
    assert counts.deliveries == 2000
    assert counts.batches >= 80
    assert written_during > 0  # the writer committed while the prune was running
    # The reader saw the table shrink batch by batch: counts between full and empty.
    assert {n for n in read if 0 < n < 2000}


def test_digest_prune_prints_one_line_and_dry_run_first(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    dry = run_cli(capsys, "--config", str(site.config_path), "prune", "--dry-run")
    assert dry.code == 0, dry.err
    assert dry.out.strip().startswith("would prune ")
    assert len(dry.out.strip().splitlines()) == 1
    real = run_cli(capsys, "--config", str(site.config_path), "prune")
    assert real.code == 0, real.err
    [line] = real.out.strip().splitlines()
    assert line.startswith("pruned ")
    assert "batches, longest" in line
    assert line.split(",")[0].split()[1] == dry.out.split()[2]  # as many deliveries as announced


@pytest.mark.parametrize(
    ("retention", "message"),
    [
        ('{ items = "3d" }', "not longer than digest.window_days"),
        ('{ deliveries = "12h" }', "at least 1 day"),
        ('{ deliveries = "10d" }', "at least 30 days"),
        ('{ items = "soon" }', "or 'forever'"),
        ('{ issues = "30d" }', "storage.retention.issues: unknown key"),
    ],
)
def test_digest_check_refuses_a_retention_that_cannot_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], retention: str, message: str
) -> None:
    result = run_cli(capsys, "--config", str(write_config(tmp_path, retention)), "check")
    assert result.code == 2
    assert message in result.err
    assert "Traceback" not in result.err


def test_retention_as_sub_keys_and_the_defaults() -> None:
    r = config.parse_settings({}, "x").storage.retention
    assert (str(r.items), str(r.deliveries), str(r.cache), str(r.fingerprints)) == (
        "180d",
        "400d",
        "180d",
        "forever",
    )
    r = config.parse_settings({"storage": {"retention": {"items": "26w"}}}, "x").storage.retention
    assert r.items.delta == timedelta(weeks=26)
    assert str(r.deliveries) == "400d"


@given(st.text(max_size=20))
def test_any_retention_text_is_a_duration_of_a_day_or_more_forever_or_a_clear_error(
    text: str,
) -> None:
    try:
        keep = KeepFor.parse(text)
    except ValueError as exc:
        error = str(exc)
    else:
        assert keep.forever or (keep.delta is not None and keep.delta >= timedelta(days=1))
        return
    assert "'forever'" in error


def test_the_daemon_prunes_on_its_crontab_and_counts_the_rows(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    time_machine: time_machine.TimeMachineFixture,
) -> None:
    """On the controlled clock (see test_daemon_clock): due at 03:00, it runs at 03:00."""
    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.INFO, logger="digest")
    due = (datetime.now(UTC) + timedelta(days=1)).replace(hour=3, minute=0, second=0, microsecond=0)
    schedule = '[schedule]\nfetch = "0 0 1 1 *"\nsend = "0 0 1 1 *"\nprune = "0 3 * * *"\n'
    path = write_config(tmp_path, RETENTION, schedule)
    store = open_store(config.load(path).storage.url)
    seed(store, due)
    store.close()

    time_machine.move_to(due - timedelta(seconds=1))
    with serving(path) as daemon:
        assert daemon.next_runs()["prune"] == due
        time_machine.move_to(due)
        daemon.scheduler.wakeup()  # the scheduler sleeps on the real clock: tell it time moved
        wait_until(lambda: messages(caplog, "prune done"))
        registry = daemon.metrics.registry
        removed = {
            table: registry.get_sample_value("digest_pruned_rows_total", {"table": table})
            for table in ("deliveries", "items", "cache")
        }
        assert removed == {"deliveries": 3, "items": 1, "cache": 1}
        assert daemon.next_runs()["prune"] == due + timedelta(days=1)
    [line] = messages(caplog, "prune done")
    assert "pruned 3 deliveries (1 issues), 1 items, 1 cached summaries, 0 expired" in line


def test_digest_prune_with_everything_kept_forever_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    forever = '{ items = "forever", deliveries = "forever", cache = "forever" }'
    result = run_cli(capsys, "--config", str(write_config(tmp_path, forever)), "prune")
    assert result.code == 0
    assert result.out.strip() == "nothing to prune: [storage] retention keeps everything forever"


def test_sigterm_stops_digest_prune_between_batches_and_a_rerun_finishes(tmp_path: Path) -> None:
    path = write_config(tmp_path, RETENTION)
    settings = config.load(path)
    store = open_store(settings.storage.url)
    with store.begin() as conn:
        [feed] = sync_feeds(conn, [FeedSpec(FEED)], now=NOW)
        [(item_id, _)] = insert_items(conn, feed.id, [item("taken")], now=NOW)
        readers = [add_subscriber(conn, f"r{i}@example.org").id for i in range(500)]
    for number in range(1, 41):  # 20,000 rows of old finished issues
        with store.begin() as conn:
            c = dataclasses.replace(content(number, item_id), created=NOW - timedelta(days=90))
            issue_id = save_issue(conn, c, subject="s", html="h", text="t", status="done")
            insert_pending(conn, issue_id, [(r, f"<{number}.{r}@x>") for r in readers], NOW)
            sent_all(conn, issue_id)

    def left() -> int:
        with store.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(schema.deliveries)).scalar())

    env = {**os.environ, "DIGEST_SECRET": "test-secret-" + "x" * 32}
    cmd = [*DIGEST, "--config", str(path), "prune", "--batch", "1"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_until(lambda: left() < 20_000 or proc.poll() is not None, timeout=60)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    stopped_at = left()
    assert proc.returncode == 1, err
    assert "stopped early" in out
    assert 0 < stopped_at < 20_000
    rerun = subprocess.run(cmd[:-2], env=env, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert left() == 0
    assert f"pruned {stopped_at} deliveries" in rerun.stdout
    store.close()


def test_digest_check_shows_the_retention(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(capsys, "--config", str(site.config_path), "check")
    assert result.code == 0, result.err
    assert (
        "retention: items 30d, deliveries 60d, cache 30d, fingerprints forever "
        "(pruned on '30 3 * * *')"
    ) in result.out


def rss(*guids: str, published: datetime) -> str:
    entries = "".join(
        f"<item><title>Story {g}</title><link>https://news.example/{g}</link>"
        f"<guid isPermaLink='false'>{g}</guid>"
        f"<pubDate>{published.strftime('%a, %d %b %Y %H:%M:%S +0000')}</pubDate>"
        "<description>A story.</description></item>"
        for g in guids
    )
    return (
        "<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel><title>News</title>"
        f"<link>https://news.example/</link><description>x</description>{entries}</channel></rss>"
    )


def test_a_feed_fetched_again_after_a_prune_brings_back_only_what_is_new(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    """Through the real fetch: an item pruned long after it was fetched, still in its feed,
    is not stored again as new; the feed's new item is."""
    url = httpserver.url_for("/feed.xml")
    feed = f'\n[[feeds]]\nurl = "{url}"\nallow_private = true\n'
    settings = config.load(write_config(tmp_path, RETENTION, feed))
    store = open_store(settings.storage.url)
    then = NOW - timedelta(days=40)
    httpserver.expect_ordered_request("/feed.xml").respond_with_data(
        rss("p1", published=then), content_type="application/rss+xml"
    )
    assert collect(settings, store, now=then).items_new == 1
    assert prune(settings, store, now=NOW).items == 1
    httpserver.expect_ordered_request("/feed.xml").respond_with_data(
        rss("p1", "p2", published=then), content_type="application/rss+xml"
    )
    assert collect(settings, store, now=NOW, force=True).items_new == 1
    with store.connect() as conn:
        assert [g for (g,) in conn.execute(select(schema.items.c.guid))] == ["p2"]
    store.close()


def test_an_old_item_an_editor_decided_on_or_put_in_a_draft_is_kept(site: Site) -> None:
    with site.store.begin() as conn:
        feed = site.ids["feed"]
        [(decided, _)] = insert_items(conn, feed, [item("decided")], now=NOW - timedelta(days=90))
        [(drafted, _)] = insert_items(conn, feed, [item("drafted")], now=NOW - timedelta(days=90))
        record_decision(
            conn,
            item_id=decided,
            topic_id="privacy",
            action="drop",
            editor="ed@example.org",
            now=NOW - timedelta(days=89),
            issue_number=None,
        )
        draft = conn.execute(
            schema.drafts.insert().values(
                number=4,
                created=NOW,
                built_at=NOW,
                period_start=NOW - timedelta(days=7),
                period_end=NOW,
                updated=NOW,
            )
        ).inserted_primary_key[0]
        conn.execute(
            schema.draft_entries.insert().values(
                draft_id=draft, item_id=drafted, topic_id="privacy", position=1
            )
        )
    assert prune(site.settings, site.store, now=NOW).items == 1  # only the seeded "old"
    with site.store.connect() as conn:
        guids = {g for (g,) in conn.execute(select(schema.items.c.guid))}
    assert {"decided", "drafted"} <= guids
    assert site.count(schema.editor_decisions) == 1


@pytest.mark.parametrize(
    "unsettled",
    [
        {"claim_token": 7, "claim_owner": "another sender", "claim_expires": NOW + timedelta(1)},
        {"state": DeliveryState.UNKNOWN.value},
    ],
    ids=["claimed", "open"],
)
def test_rows_a_sender_still_claims_or_must_resend_keep_their_issue_whole(
    site: Site, unsettled: dict[str, Any]
) -> None:
    """Issue #1 is old and done, but one row is claimed by a live sender (store/claims.py) or
    still open: none of its rows goes and it is not marked; once settled, they go."""
    d = schema.deliveries
    with site.store.begin() as conn:
        first = conn.execute(
            select(func.min(d.c.id)).where(d.c.issue_id == site.ids["issue1"])
        ).scalar()
        conn.execute(update(d).where(d.c.id == first).values(**unsettled))
    assert prune(site.settings, site.store, now=NOW, dry_run=True).deliveries == 0
    counts = prune(site.settings, site.store, now=NOW)
    assert (counts.deliveries, counts.issues) == (0, 0)
    assert site.count(d, d.c.issue_id == site.ids["issue1"]) == 3
    assert site.count(schema.issues, schema.issues.c.deliveries_pruned.is_not(None)) == 0
    with site.store.begin() as conn:  # the claim expired (its sender finished), the row sent
        conn.execute(
            update(d)
            .where(d.c.id == first)
            .values(state=DeliveryState.SENT.value, claim_expires=NOW - timedelta(1))
        )
    assert prune(site.settings, site.store, now=NOW).deliveries == 3


@pytest.mark.parametrize(("fingerprints", "undated_goes"), [("forever", True), ("400d", False)])
def test_an_item_dated_recently_stays_and_an_undated_one_goes_only_with_a_lasting_fingerprint(
    tmp_path: Path, site: Site, fingerprints: str, undated_goes: bool
) -> None:
    """First seen 90 days ago (items kept 30): one dated 3 days ago may still go into an issue;
    an undated one, once its fingerprint expired, would come back dated today (into the next
    issue), so it is pruned only while fingerprints are kept forever."""
    with site.store.begin() as conn:
        insert_items(
            conn,
            site.ids["feed"],
            [
                dataclasses.replace(item("dated-recently"), published=NOW - timedelta(days=3)),
                dataclasses.replace(
                    item("undated"), published=NOW - timedelta(days=90), dated=False
                ),
            ],
            now=NOW - timedelta(days=90),
        )
    settings = config.load(
        write_config(tmp_path, f'{{ items = "30d", fingerprints = "{fingerprints}" }}')
    )
    would = prune(settings, site.store, now=NOW, dry_run=True)
    counts = prune(settings, site.store, now=NOW)
    assert would.items == counts.items == (2 if undated_goes else 1)  # with the seeded "old"
    with site.store.connect() as conn:
        guids = {g for (g,) in conn.execute(select(schema.items.c.guid))}
    assert "dated-recently" in guids
    assert ("undated" not in guids) is undated_goes


def test_with_everything_kept_forever_the_daemon_has_no_prune_job_until_a_reload_sets_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DIGEST_SECRET", "test-secret-" + "x" * 32)
    forever = '{ items = "forever", deliveries = "forever", cache = "forever" }'
    path = write_config(tmp_path, forever)
    settings = config.load(path)
    store = open_store(settings.storage.url)
    daemon = Daemon(path, settings, store)
    daemon.scheduler.start(paused=True)
    try:
        daemon.sync_jobs()
        assert daemon.scheduler.get_job("prune") is None
        write_config(tmp_path, '{ deliveries = "400d" }', '[schedule]\nprune = "15 4 * * *"\n')
        daemon.reload("SIGHUP")
        job = daemon.scheduler.get_job("prune")
        assert job is not None
        assert (job.next_run_time.hour, job.next_run_time.minute) == (4, 15)
    finally:
        daemon.scheduler.shutdown(wait=False)
        store.close()


def test_the_default_item_retention_stretches_to_twice_a_longer_window() -> None:
    from digest.config import parse_settings

    # A year-long window with no retention written: items are kept two years, never refused.
    settings = parse_settings({"digest": {"window_days": 365}}, "digest.toml")
    assert settings.storage.retention.items.delta == timedelta(days=730)
    assert parse_settings({}, "digest.toml").storage.retention.items.delta == timedelta(days=180)
