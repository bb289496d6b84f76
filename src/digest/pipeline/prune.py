"""``[storage] retention`` applied: the cutoffs from the config, then store.retention's batches."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

from digest.config import Settings
from digest.store import Store
from digest.store import retention as rstore

log = logging.getLogger(__name__)


def prune(
    settings: Settings,
    store: Store,
    *,
    dry_run: bool = False,
    stop: threading.Event | None = None,
    now: datetime | None = None,
) -> rstore.PruneCounts:
    """Remove (``dry_run``: count) what is older than ``[storage] retention``; nothing if unset."""
    r = settings.storage.retention
    now = now or datetime.now(UTC)
    items_before = now - r.items.delta if r.items is not None else None
    deliveries_before = now - r.deliveries.delta if r.deliveries is not None else None
    if dry_run:
        with store.connect() as conn:
            return rstore.count(
                conn, items_before=items_before, deliveries_before=deliveries_before
            )
    counts = rstore.prune(
        store, items_before=items_before, deliveries_before=deliveries_before, stop=stop
    )
    log.info(
        "pruned %d item(s), %d delivery row(s), %d cached summary(ies)",
        counts.items,
        counts.deliveries,
        counts.llm_cache,
        extra={"batches": counts.batches},
    )
    return counts
