"""Choosing an issue's items per topic: the best by score then recency, each item once."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from digest.models import TopicMatch


@dataclass(frozen=True)
class Candidate:
    """An item competing for a place in an issue, with its topic decisions."""

    key: int
    published: datetime
    matches: tuple[TopicMatch, ...]


def select(
    candidates: Sequence[Candidate],
    *,
    max_per_topic: int,
    one_topic_per_item: bool = True,
    thresholds: dict[str, float] | None = None,
) -> dict[str, list[Candidate]]:
    """Per topic (config order), the best ``max_per_topic`` kept candidates, best first.

    Ranking within a topic: score, then most recent, then key. With ``one_topic_per_item`` an
    item kept by several topics appears once, under its best topic (score relative to the
    topic's threshold when ``thresholds`` are given); if that topic is already full of better
    items, it goes to its next-best topic instead of being lost.
    """
    order: list[str] = []
    for c in candidates:
        for m in c.matches:
            if m.topic_id not in order:
                order.append(m.topic_id)
    out: dict[str, list[Candidate]] = {tid: [] for tid in order}
    if max_per_topic <= 0:
        return out

    def rank(c: Candidate, tid: str) -> tuple[float, float, int]:
        m = next(m for m in c.matches if m.topic_id == tid)
        return (-m.score, -c.published.timestamp(), c.key)

    if not one_topic_per_item:
        for tid in order:
            kept = [c for c in candidates if any(m.topic_id == tid and m.kept for m in c.matches)]
            out[tid] = sorted(kept, key=functools.partial(rank, tid=tid))[:max_per_topic]
        return out

    thr = thresholds or {}

    def preference(c: Candidate) -> list[str]:
        kept = [m for m in c.matches if m.kept]
        kept.sort(
            key=lambda m: (
                -(m.score / thr[m.topic_id] if thr.get(m.topic_id) else m.score),
                order.index(m.topic_id),
            )
        )
        return [m.topic_id for m in kept]

    # Deferred acceptance: each item proposes to its preferred topic; a topic keeps its best
    # `max_per_topic` proposals; rejected items try their next topic. Ends in a stable choice.
    prefs = {c.key: preference(c) for c in candidates}
    by_key = {c.key: c for c in candidates}
    nxt = dict.fromkeys(prefs, 0)
    held: dict[str, list[Candidate]] = {tid: [] for tid in order}
    free = [c.key for c in candidates if prefs[c.key]]
    while free:
        key = free.pop()
        i = nxt[key]
        if i >= len(prefs[key]):
            continue
        nxt[key] = i + 1
        tid = prefs[key][i]
        pool = sorted([*held[tid], by_key[key]], key=functools.partial(rank, tid=tid))
        held[tid] = pool[:max_per_topic]
        free.extend(c.key for c in pool[max_per_topic:])
    for tid in order:
        out[tid] = sorted(held[tid], key=functools.partial(rank, tid=tid))
    return out
