"""Benchmark (issue 13, retention): prune half of a 2,000,000-row deliveries table.

Builds a database with 100,000 subscribers and 20 finished issues (2,000,000 delivery rows), half
of the issues older than ``[storage] retention.deliveries``, plus 100,000 items (half old, each
with its topic decision and summary, so the cascades count). Then runs the real prune (the code
``digest prune`` and the daemon run) while a writer thread commits one small transaction at a
time, as a concurrent ``digest send`` marking rows would. Prints rows/s, the number of batches,
the longest single prune transaction, and the writer's longest wait for one commit.

Run: ``.venv/bin/python benchmarks/prune.py [--subscribers 100000] [--batch 5000]
[--database URL]`` (default: a SQLite file in a temporary folder; ``--quick``: 10,000
subscribers). A ``--database`` must be an empty database: the script fills it.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select

from digest import config
from digest.pipeline.prune import format_pruned, prune
from digest.store import Store, open_store, schema

NOW = datetime.now(UTC)
ISSUES = 20
CHUNK = 20_000


def _rows(store: Store, table: Any, rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), CHUNK):
        with store.begin() as conn:
            conn.execute(insert(table), rows[start : start + CHUNK])


def fill(store: Store, subscribers: int, items: int) -> None:
    """Subscribers, ISSUES finished issues (half 500 days old), a row per (issue, subscriber),
    ``items`` items (half 300 days old) with a topic decision and a summary each."""
    with store.begin() as conn:
        feed = conn.execute(
            insert(schema.feeds).values(url="https://news.example/feed", created=NOW)
        ).inserted_primary_key[0]
    _rows(
        store,
        schema.subscribers,
        [
            {
                "email": f"r{i}@example.org",
                "email_key": f"r{i}@example.org",
                "status": "active",
                "topics": "",
                "created": NOW,
                "token_key": f"{i:032x}",
            }
            for i in range(subscribers)
        ],
    )
    old, new = NOW - timedelta(days=300), NOW - timedelta(days=10)
    _rows(
        store,
        schema.items,
        [
            {
                "feed_id": feed,
                "guid": f"g{i}",
                "url": f"https://news.example/{i}",
                "canonical_url": f"https://news.example/{i}",
                "title": f"Item {i}",
                "published": old if i % 2 else new,
                "first_seen": old if i % 2 else new,
                "content_html": "<p>" + "word " * 200 + "</p>",
            }
            for i in range(items)
        ],
    )
    with store.connect() as conn:
        ids = [int(i) for (i,) in conn.execute(select(schema.items.c.id))]
    _rows(
        store,
        schema.item_topics,
        [{"item_id": i, "topic_id": "t", "score": 1.0, "kept": True} for i in ids],
    )
    _rows(
        store,
        schema.summaries,
        [
            {"item_id": i, "engine": "lead", "language": "en", "text": "s " * 60, "created": NOW}
            for i in ids
        ],
    )
    with store.connect() as conn:
        sids = [int(i) for (i,) in conn.execute(select(schema.subscribers.c.id))]
    for n in range(1, ISSUES + 1):
        created = NOW - timedelta(days=500 if n <= ISSUES // 2 else 30)
        with store.begin() as conn:
            issue = conn.execute(
                insert(schema.issues).values(
                    number=n,
                    created=created,
                    period_start=created,
                    period_end=created,
                    title="t",
                    language="en",
                    content_json="{}",
                    subject="s",
                    html="<p>h</p>",
                    text="t",
                    status="done",
                )
            ).inserted_primary_key[0]
        _rows(
            store,
            schema.deliveries,
            [
                {
                    "issue_id": issue,
                    "subscriber_id": s,
                    "state": "sent",
                    "attempts": 1,
                    "message_id": f"<{n}.{s}@news.example>",
                    "updated": created,
                    "sent_at": created,
                }
                for s in sids
            ],
        )


def writer(store: Store, stop: threading.Event, waits: list[float]) -> None:
    """A concurrent sender's work: one small committed write at a time, each timed."""
    n = 0
    while not stop.is_set():
        started = time.monotonic()
        with store.begin() as conn:
            conn.execute(insert(schema.llm_cache).values(key=f"w{n}", summary="s", created=NOW))
        waits.append(time.monotonic() - started)
        n += 1
        time.sleep(0.01)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--database", help="an empty database URL (default: a SQLite file)")
    parser.add_argument("--quick", action="store_true", help="10,000 subscribers, 10,000 items")
    args = parser.parse_args()
    if args.quick:
        args.subscribers, args.items = 10_000, 10_000
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database or f"sqlite:///{Path(tmp) / 'prune.db'}"
        settings = config.parse_settings(
            {"storage": {"url": url, "retention": {"items": "180d", "deliveries": "400d"}}},
            "<benchmark>",
        )
        store = open_store(url)
        started = time.monotonic()
        fill(store, args.subscribers, args.items)
        with store.connect() as conn:
            total = conn.execute(select(func.count()).select_from(schema.deliveries)).scalar()
        print(
            f"filled {total:,} deliveries, {args.items:,} items in "
            f"{time.monotonic() - started:.0f} s ({store.engine.dialect.name}, "
            f"{platform.python_version()}, {os.cpu_count()} cores)"
        )
        other = open_store(url, create=False)
        stop, waits = threading.Event(), []
        thread = threading.Thread(target=writer, args=(other, stop, waits))
        thread.start()
        started = time.monotonic()
        try:
            counts = prune(settings, store, batch=args.batch)
        finally:
            stop.set()
            thread.join()
        took = time.monotonic() - started
        print(format_pruned(counts))
        rows = counts.deliveries + counts.items
        print(f"| prune wall time | {took:.1f} s |")
        print(f"| deliveries removed | {counts.deliveries:,} |")
        print(f"| items removed (+ topics, summaries, fingerprints written) | {counts.items:,} |")
        print(f"| rows/s (deliveries + items) | {rows / took:,.0f} |")
        print(f"| batches | {counts.batches} of up to {args.batch:,} |")
        print(f"| longest single transaction | {counts.longest * 1000:.0f} ms |")
        waits.sort()
        if waits:
            print(
                f"| concurrent writer: {len(waits)} commits | median "
                f"{waits[len(waits) // 2] * 1000:.1f} ms, longest {waits[-1] * 1000:.0f} ms |"
            )
        other.close()
        store.close()
    sys.stdout.flush()


if __name__ == "__main__":
    main()
