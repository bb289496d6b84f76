"""Retention: `digest prune` and the daemon's prune job remove old items and delivery rows in
small batches, and keep what issues, dedup and unfinished deliveries still need."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select, update

from conftest import run_cli
from delivery_kit import add_people, store_issue
from digest import config
from digest.config import parse_settings
from digest.errors import ConfigError
from digest.pipeline.prune import prune
from digest.schedule import Daemon
from digest.store import Store, open_store, schema
from digest.store.deliveries import insert_pending
from digest.store.retention import prune as prune_rows

NOW = datetime(2027, 6, 1, 12, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=400)
RECENT = NOW - timedelta(days=10)
RETENTION = {"storage": {"retention": {"items": "180d", "deliveries": "300d"}}}


@pytest.fixture
def store(db_url: str) -> Store:
    return open_store(db_url)


def _count(store: Store, table: object) -> int:
    with store.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar() or 0)  # type: ignore[arg-type]


def _items(store: Store) -> dict[str, int]:
    """Items of every kind; ids from 100 (the stored issue's own items are 1-6)."""
    made: dict[str, int] = {}
    with store.begin() as conn:
        feed = conn.execute(select(schema.feeds.c.id)).scalar_one()
        for n, (name, seen, published, dated) in enumerate(
            [
                ("old", OLD, OLD, True),
                ("old2", OLD, OLD, True),
                ("recent", RECENT, RECENT, True),
                ("old_seen_recent_date", OLD, RECENT, True),
                ("undated", OLD, OLD, False),
            ]
        ):
            url = f"https://example.org/{name}"
            item_id = 100 + n
            conn.execute(
                insert(schema.items).values(
                    id=item_id,
                    feed_id=feed,
                    guid=url,
                    url=url,
                    canonical_url=url,
                    title=name,
                    published=published,
                    dated=dated,
                    first_seen=seen,
                )
            )
            conn.execute(
                insert(schema.item_topics).values(
                    item_id=item_id, topic_id="t", score=1.0, kept=True
                )
            )
            conn.execute(
                insert(schema.summaries).values(
                    item_id=item_id, engine="x", language="en", text="s", created=seen
                )
            )
            made[name] = item_id
        conn.execute(
            insert(schema.llm_cache),
            [
                {"key": "old", "summary": "s", "created": OLD},
                {"key": "new", "summary": "s", "created": RECENT},
            ],
        )
        # The stored issue's items are old too: kept, the issue (archive) refers to them.
        conn.execute(
            update(schema.items)
            .where(schema.items.c.id < 100)
            .values(first_seen=OLD, published=OLD)
        )
    return made


def test_old_items_go_with_their_topics_and_summaries_and_the_rest_stays(store: Store) -> None:
    store_issue(store)
    made = _items(store)
    settings = parse_settings(RETENTION, "t.toml")
    counts = prune(settings, store, now=NOW)
    with store.connect() as conn:
        left = set(conn.execute(select(schema.items.c.id)).scalars())
        topics = set(conn.execute(select(schema.item_topics.c.item_id)).scalars())
        cache = set(conn.execute(select(schema.llm_cache.c.key)).scalars())
    assert counts.items == 2
    assert made["old"] not in left
    assert made["old2"] not in left
    # Recent, published recently (an issue may still take it), undated (dedup), in an issue.
    assert {made["recent"], made["old_seen_recent_date"], made["undated"]} <= left
    assert set(range(1, 7)) <= left
    assert made["old"] not in topics
    assert _count(store, schema.summaries) == 3
    assert cache == {"new"}


def test_delivery_rows_of_old_finished_issues_go_and_the_issues_stay(store: Store) -> None:
    store_issue(store, 1)
    store_issue(store, 2)
    store_issue(store, 3)
    add_people(store, [f"p{i}@example.org" for i in range(7)])
    with store.begin() as conn:
        ids = dict(conn.execute(select(schema.issues.c.number, schema.issues.c.id)).all())
        sids = list(conn.execute(select(schema.subscribers.c.id)).scalars())
        for number, issue_id in ids.items():
            insert_pending(conn, issue_id, [(s, f"<{number}.{s}@x>") for s in sids], NOW)
        i = schema.issues
        conn.execute(update(i).where(i.c.number == 1).values(created=OLD, status="done"))
        conn.execute(update(i).where(i.c.number == 2).values(created=OLD, status="sending"))
        conn.execute(update(i).where(i.c.number == 3).values(created=RECENT, status="done"))
    # Batches of 3 rows: 7 rows take three transactions, none of them long.
    counts = prune_rows(
        store, items_before=None, deliveries_before=NOW - timedelta(days=300), batch=3
    )
    assert counts.deliveries == 7
    assert counts.batches == 3
    with store.connect() as conn:
        per_issue = dict(
            conn.execute(
                select(schema.deliveries.c.issue_id, func.count()).group_by(
                    schema.deliveries.c.issue_id
                )
            ).all()
        )
    # Issue 2 is still being delivered: its rows stay, however old it is.
    assert per_issue == {ids[2]: 7, ids[3]: 7}
    assert _count(store, schema.issues) == 3


def test_a_retention_under_30_days_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"storage\.retention\.items: expected at least 30 days"):
        parse_settings({"storage": {"retention": {"items": "7d"}}}, "t.toml")


def test_digest_prune_dry_run_counts_and_prune_removes(
    store: Store, db_url: str, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store_issue(store)
    _items(store)
    cfg = workdir / "digest.toml"
    cfg.write_text(
        f'[storage]\nurl = "{db_url}"\nretention = {{ items = "180d", deliveries = "400d" }}\n',
        encoding="utf-8",
    )
    # The rows are 400 days older than NOW (2027), so older still than today's cutoff.
    before = _count(store, schema.items)
    code, out, _ = run_cli(capsys, "--config", str(cfg), "prune", "--dry-run")
    assert code == 0
    assert "would remove 2 item(s)" in out
    assert _count(store, schema.items) == before
    code, out, _ = run_cli(capsys, "--config", str(cfg), "prune")
    assert code == 0
    assert "removed 2 item(s)" in out
    assert _count(store, schema.items) == before - 2


def test_without_retention_prune_says_so_and_the_daemon_has_no_prune_job(
    store: Store, db_url: str, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = workdir / "digest.toml"
    cfg.write_text(f'[storage]\nurl = "{db_url}"\n', encoding="utf-8")
    code, out, _ = run_cli(capsys, "--config", str(cfg), "prune")
    assert code == 0
    assert "retention is not set" in out
    d = Daemon(cfg, config.load(cfg), store)
    d.scheduler.start(paused=True)
    try:
        d.sync_jobs()
        assert d.scheduler.get_job("prune") is None
        cfg.write_text(
            f'[storage]\nurl = "{db_url}"\nretention = {{ deliveries = "400d" }}\n'
            '[schedule]\nprune = "15 4 * * *"\n',
            encoding="utf-8",
        )
        d.reload("SIGHUP")
        job = d.scheduler.get_job("prune")
        assert job is not None
        assert (job.next_run_time.hour, job.next_run_time.minute) == (4, 15)
    finally:
        d.scheduler.shutdown(wait=False)
