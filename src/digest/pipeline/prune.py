"""``[storage] retention`` applied: the cutoffs from the config, then ``store.retention``'s
batches (or, for a dry run, its counts)."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

from digest.config import Settings
from digest.store import Store
from digest.store import retention as rstore

log = logging.getLogger(__name__)


def cutoffs(settings: Settings, now: datetime) -> rstore.Cutoffs:
    """Rows older than these go (None: kept forever)."""
    r = settings.storage.retention
    deliveries = r.deliveries.cutoff(now)
    # Bounce reports are the record of how deliveries went: they go with the delivery rows
    # (one retention, so a bounce about an issue whose rows are kept is kept too), but never
    # inside the soft-bounce window, whose count decides who is marked bounced.
    bounces = None
    if deliveries is not None:
        bounces = min(deliveries, now - settings.bounces.soft_window.delta)
    return rstore.Cutoffs(
        items=r.items.cutoff(now),
        deliveries=deliveries,
        cache=r.cache.cutoff(now),
        fingerprints=r.fingerprints.cutoff(now),
        bounces=bounces,
    )


def prune(
    settings: Settings,
    store: Store,
    *,
    dry_run: bool = False,
    stop: threading.Event | None = None,
    now: datetime | None = None,
    batch: int = rstore.BATCH,
) -> rstore.PruneCounts:
    """Remove (``dry_run``: count) what is older than ``[storage] retention``."""
    now = now or datetime.now(UTC)
    cut = cutoffs(settings, now)
    if dry_run:
        with store.connect() as conn:
            return rstore.count(conn, cut, now=now)
    return rstore.prune(store, cut, now=now, batch=batch, stop=stop)


def format_pruned(counts: rstore.PruneCounts, *, dry_run: bool = False) -> str:
    """The end-of-run line: ``pruned 1200 deliveries (3 issues), 40 items, ...``."""
    verb = "would prune" if dry_run else "pruned"
    parts = [f"{counts.deliveries} deliveries ({counts.issues} issues)"]
    parts += [f"{counts.items} items", f"{counts.cache} cached summaries"]
    parts.append(f"{counts.fingerprints} expired fingerprints")
    parts.append(f"{counts.bounces} bounce reports")
    line = f"{verb} " + ", ".join(parts)
    if not dry_run:
        line += f" · {counts.batches} batches, longest {counts.longest * 1000:.0f} ms"
        if counts.longest_kind:
            line += f" ({counts.longest_kind})"
    if counts.stopped:
        line += " · stopped early: the rest goes next time"
    return line
