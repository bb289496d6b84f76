"""A link already stored, met again in another feed: recorded as coverage of the same story
("also covered by"), and decided again with that feed's settings, so a regulator's feed that
carries a link a press feed brought first still puts the story in its topic.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Connection

from digest.models import FeedSpec, Item, TopicMatch
from digest.store.items import load_topic_matches, save_topic_matches
from digest.store.sightings import record_sightings

if TYPE_CHECKING:
    from digest.pipeline.relevance import Decider

__all__ = ["note_coverage"]


def note_coverage(
    conn: Connection,
    feed_id: int,
    items: Sequence[Item],
    *,
    decider: Callable[[], Decider] | None,
    spec: FeedSpec,
    source: str,
    now: datetime,
) -> Counter[str]:
    """Record this feed's items whose link another feed's item holds; returns the topics that
    now keep a story they did not (a sighting kept by this feed's settings). ``decider`` is
    called only when there is a sighting: compiling the topics costs half a second."""
    seen = record_sightings(conn, feed_id, items, now=now)
    gained: Counter[str] = Counter()
    if not seen or decider is None:
        return gained
    decide = decider().decide
    for item_id, item in seen:
        before = {m.topic_id: m for m in load_topic_matches(conn, item_id)}
        now_decided = decide(item, spec, source)
        merged: list[TopicMatch] = []
        changed = False
        for m in now_decided:
            old = before.pop(m.topic_id, None)
            if m.kept and (old is None or not old.kept):
                merged.append(m)
                gained[m.topic_id] += 1
                changed = True
            elif old is not None:
                merged.append(old)
            else:
                merged.append(m)
                changed = True
        merged.extend(before.values())  # topics removed from the config since: left as they were
        if changed:
            save_topic_matches(conn, item_id, merged)
    return gained
