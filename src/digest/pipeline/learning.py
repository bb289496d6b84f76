"""The learned topic scorer in the pipeline: which model applies, training it from labeled
files and the editors' decisions (``digest topics learn``), and its opinion on stored items for
the editors' desk (near misses) and for topics configured with ``learned = "keep"``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from digest.config import Settings
from digest.errors import UsageError
from digest.models import StoredItem, TopicMatch
from digest.pipeline.relevance import item_text
from digest.sanitize import plain_text
from digest.store import Store

if TYPE_CHECKING:
    from digest.topics import EvalRow
    from digest.topics.learned import Example, TextModel

#: The model trained on the shipped labeled set (tests/data/topics/tuning.jsonl), in the package.
SHIPPED_MODEL = Path(__file__).resolve().parent.parent / "topics" / "model.json.gz"

log = logging.getLogger(__name__)
_lock = threading.Lock()
#: (path, mtime) -> (the model, whether it is the shipped one standing in for an unreadable file)
_loaded: dict[tuple[str, float], tuple[TextModel, bool]] = {}


def model_path(settings: Settings) -> Path:
    """``[storage] topic_model`` when `digest topics learn` has written it, else the shipped."""
    own = Path(settings.storage.topic_model)
    return own if own.is_file() else SHIPPED_MODEL


def load_model(settings: Settings, *, strict: bool = False) -> TextModel | None:
    """The model for ``settings`` (loaded once per file version), or None when every topic has
    ``learned = "off"`` or no model file exists.

    An operator's model that cannot be read is a UsageError with ``strict`` (``digest check``,
    ``explain``, ``topics eval``); otherwise (the fetch, the desk) it is logged and the shipped
    model decides instead: one bad file never stops a run.
    """
    from digest.topics.learned import TextModel

    if all(t.learned == "off" for t in settings.topics.values()):
        return None
    path = model_path(settings)
    try:
        key = (str(path), path.stat().st_mtime)
    except OSError:
        return None
    with _lock:
        got = _loaded.get(key)
        if got is None or (strict and got[1]):
            try:
                got = (TextModel.load(path), False)
            except UsageError as exc:
                if strict or path == SHIPPED_MODEL:
                    raise
                log.error("%s; the shipped topic model decides instead", exc)
                got = (TextModel.load(SHIPPED_MODEL), True)
            _loaded.clear()
            _loaded[key] = got
    return got[0]


def probabilities(settings: Settings, items: Sequence[StoredItem]) -> list[dict[str, float]]:
    """Per stored item, the model's probability for each configured topic it knows (topics
    with ``learned = "off"`` left out); empty dicts when there is no model. One batch."""
    model = load_model(settings)
    if model is None or not items:
        return [{} for _ in items]
    wanted = {tid for tid, t in settings.topics.items() if t.learned != "off"}
    got = model.predict([(s.item.title, item_text(s.item)) for s in items])
    return [{t: p for t, p in probs.items() if t in wanted} for probs in got]


@dataclass(frozen=True)
class NearMiss:
    """An item the rules dropped for a topic but the model rates at least the topic's floor."""

    item_id: int
    topic_id: str
    probability: float


def near_misses(
    settings: Settings,
    items: Sequence[StoredItem],
    matches: Sequence[Sequence[TopicMatch]],
) -> list[NearMiss]:
    """For the editors' desk: of ``items`` (with their stored topic decisions), those the rules
    dropped and the model rates at or above ``learned_floor`` for a topic, best first."""
    from digest.topics.learned import learned_keeps

    defs = {t.id: t for t in settings.topic_defs()}
    found: list[NearMiss] = []
    for stored, probs, ms in zip(items, probabilities(settings, items), matches, strict=True):
        for m in ms:
            tdef = defs.get(m.topic_id)
            if (
                tdef is not None
                and not m.kept
                and learned_keeps(tdef, m, probs.get(m.topic_id), outright=False)
            ):
                found.append(NearMiss(stored.id, m.topic_id, round(probs[m.topic_id], 4)))
    return sorted(found, key=lambda n: (-n.probability, n.item_id))


# --------------------------------------------------------------------------- training


def examples_from(rows: Sequence[EvalRow]) -> list[Example]:
    from digest.topics.learned import Example

    return [Example(r.title, r.text, r.labels) for r in rows]


def editor_examples(store: Store) -> list[Example]:
    """The editors' decisions as training examples, each speaking for its one topic."""
    from digest.store.learning import editor_labels
    from digest.topics.learned import Example

    with store.connect() as conn:
        labels = editor_labels(conn)
    return [
        Example(
            lab.title,
            plain_text(lab.html),
            frozenset({lab.topic_id}) if lab.kept else frozenset(),
            only=frozenset({lab.topic_id}),
        )
        for lab in labels
    ]


def editor_rows(store: Store, topic_id: str) -> list[EvalRow]:
    """The editors' last decision on each item for ``topic_id`` as a labeled row (labeled with
    the topic when she added, pinned or kept it; unlabeled when she dropped it), for
    ``digest topics suggest``."""
    from digest.store.learning import editor_labels
    from digest.topics import EvalRow

    with store.connect() as conn:
        labels = editor_labels(conn)
    return [
        EvalRow(
            lab.title,
            plain_text(lab.html),
            frozenset({topic_id}) if lab.kept else frozenset(),
            line=lab.item_id,  # the item id, to name it
        )
        for lab in labels
        if lab.topic_id == topic_id
    ]


def learn(
    settings: Settings,
    files: Sequence[tuple[str, Sequence[EvalRow]]],
    decisions: Sequence[Example],
    *,
    out: Path | None = None,
) -> tuple[TextModel, Path]:
    """Train on the labeled ``files`` and the editors' ``decisions`` for the configured topics;
    write the model to ``out`` (default ``[storage] topic_model``). Returns it and where."""
    from digest.topics.learned import train

    examples = [e for _name, rows in files for e in examples_from(rows)] + list(decisions)
    info: dict[str, Any] = {
        "files": {name: len(rows) for name, rows in files},
        "editor_decisions": len(decisions),
        "items": len(examples),
        "at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    topics: list[str] = []
    skipped: list[str] = []
    for tid in settings.topics:
        said = [tid in e.labels for e in examples if e.speaks_for(tid)]
        (topics if any(said) and not all(said) else skipped).append(tid)
    if not topics:
        raise UsageError(
            "topics learn: no configured topic has labeled items both in and out of it"
        )
    info["skipped_topics"] = skipped
    model = train(examples, topics, trained_on=info)
    path = out or Path(settings.storage.topic_model)
    model.save(path)
    with _lock:
        _loaded.clear()
    return model, path


def decide_with_model(
    settings: Settings,
    texts: Sequence[tuple[str, str]],
    decisions: Sequence[tuple[TopicMatch, ...]],
) -> list[tuple[TopicMatch, ...]]:
    """The rules' ``decisions`` for items (title, text), with the model's keeps added for the
    topics configured ``learned = "keep"``. The model is loaded, and run in one batch, only when
    some item was dropped by such a topic (``digest fetch`` never loads it otherwise)."""
    from digest.topics.learned import combine, needs_model

    defs = settings.topic_defs()
    if not needs_model(defs):
        return list(decisions)
    keep = {t.id for t in defs if t.learned == "keep"}
    todo = [
        i
        for i, ms in enumerate(decisions)
        if any(m.topic_id in keep and not m.kept and not m.vetoes for m in ms)
    ]
    model = load_model(settings) if todo else None
    if model is None:
        return list(decisions)
    out = list(decisions)
    for i, probs in zip(todo, model.predict([texts[i] for i in todo]), strict=True):
        out[i] = combine(defs, decisions[i], probs)
    return out
