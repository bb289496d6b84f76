"""The learned scorer: a per-topic linear text classifier (a second opinion on the rules).

Features are folded words, word pairs and the 4-letter pieces of each word (so "hébergeurs"
and "hebergement" share evidence across languages and inflections), weighted TF-IDF; one
logistic regression per topic gives the probability. The fitted model is plain data (feature
names, IDF, coefficients) kept as JSON: loading it runs no code, and scoring needs only numpy.
"""

from __future__ import annotations

import gzip
import hashlib
import itertools
import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from digest.errors import UsageError
from digest.models import TopicDef, TopicMatch
from digest.topics.text import fold

#: The JSON layout's version: a file of another version is refused with a clear message.
FORMAT = 1
#: Only the start of a long text is read: the labeled items are a title and a first sentence,
#: an article's lead says what it is about, and scoring costs grow with every word read.
MAX_TEXT_CHARS = 400
#: Letter pieces of each word, 4 letters (the word padded with spaces): 3-5 letters scored no
#: better in cross-validation and three times slower.
CHAR_MIN, CHAR_MAX = 4, 4
#: Features seen in fewer training items than this are left out (noise, and a smaller file).
MIN_DF = 2
#: Inverse regularization of the logistic regressions (chosen by cross-validation on the tuning
#: set: ``digest topics learn --cv``).
DEFAULT_C = 100.0
#: The title counts this many times: a headline says more than the lead.
TITLE_REPEAT = 2
#: The model gives no opinion on an item when fewer of its words than this share are words it
#: was trained on: text in another language or script is not something it has learned to
#: judge (the lowest share on the held-out set is 0.44; German and Russian items score 0-0.33).
MIN_KNOWN_WORDS = 0.4
#: Word -> feature ids cached per model up to this many words, then the cache starts over.
_CACHE_WORDS = 200_000


@dataclass(frozen=True)
class Example:
    """One training item. ``labels``: the topics it belongs to; ``only``: the topics this
    example speaks for (an editor's decision is about one topic), ``None`` for all."""

    title: str
    text: str
    labels: frozenset[str]
    only: frozenset[str] | None = None

    def speaks_for(self, topic: str) -> bool:
        return self.only is None or topic in self.only


def _fields(title: str, text: str) -> list[tuple[list[str], int]]:
    """Folded words of each field with how many times it counts (the title TITLE_REPEAT)."""
    return [(fold(title).split(), TITLE_REPEAT), (fold(text[:MAX_TEXT_CHARS]).split(), 1)]


def _words(title: str, text: str) -> list[list[str]]:
    """Folded words of each field (the title repeated): bigrams never span two fields."""
    return [words for words, times in _fields(title, text) for _ in range(times)]


def _pieces(word: str) -> list[str]:
    padded = f" {word} "
    n = len(padded)
    if n <= CHAR_MIN:
        return [f"c:{padded}"]
    return [
        f"c:{padded[i : i + k]}"
        for k in range(CHAR_MIN, min(CHAR_MAX, n) + 1)
        for i in range(n - k + 1)
    ]


def analyze(title: str, text: str) -> list[str]:
    """Every feature of an item, repeated as often as it occurs (training and explanation)."""
    feats: list[str] = []
    for words in _words(title, text):
        for w in words:
            feats.append(f"w:{w}")
            feats.extend(_pieces(w))
        feats.extend(f"b:{a} {b}" for a, b in itertools.pairwise(words))
    return feats


def data_hash(examples: Iterable[Example]) -> str:
    """SHA-256 of the training data (order-independent): which data a model was trained on."""
    lines = sorted(
        json.dumps(
            [e.title, e.text, sorted(e.labels), None if e.only is None else sorted(e.only)],
            ensure_ascii=False,
        )
        for e in examples
    )
    h = hashlib.sha256()
    for line in lines:
        h.update(line.encode("utf-8") + b"\n")
    return h.hexdigest()


@dataclass(frozen=True)
class Driver:
    """A word of the item and how much it pushed the topic's score (log-odds)."""

    word: str
    weight: float


@dataclass
class TextModel:
    """A fitted model: ``probabilities`` for one item, ``predict`` for a batch."""

    topics: tuple[str, ...]
    features: tuple[str, ...]
    idf: npt.NDArray[np.float64]
    #: (n_features, n_topics)
    coef: npt.NDArray[np.float64]
    intercept: npt.NDArray[np.float64]
    data_hash: str = ""
    #: What it was trained on: sources, item counts per topic, when.
    trained_on: dict[str, Any] = field(default_factory=dict)
    name: str = "learned"
    _index: dict[str, int] = field(default_factory=dict, repr=False)
    #: word -> (its feature ids, whether the word itself is a learned feature)
    _cache: dict[str, tuple[tuple[int, ...], bool]] = field(default_factory=dict, repr=False)
    _pairs: dict[str, int] = field(default_factory=dict, repr=False)
    #: first word -> second word -> the pair's feature id: no string built per pair of words
    _heads: dict[str, dict[str, int]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._index = {f: i for i, f in enumerate(self.features)}
        self._pairs = {f[2:]: i for f, i in self._index.items() if f.startswith("b:")}
        for pair, i in self._pairs.items():
            first, _, second = pair.partition(" ")
            self._heads.setdefault(first, {})[second] = i
        short = self.data_hash[:12] or "unhashed"
        self.name = f"learned (data sha256 {short})"

    # ------------------------------------------------------------------ scoring

    def _word(self, word: str) -> tuple[tuple[int, ...], bool]:
        got = self._cache.get(word)
        if got is None:
            if len(self._cache) >= _CACHE_WORDS:
                self._cache.clear()
            index = self._index
            ids = tuple(i for f in (f"w:{word}", *_pieces(word)) if (i := index.get(f)) is not None)
            got = self._cache[word] = (ids, f"w:{word}" in index)
        return got

    def _word_ids(self, word: str) -> tuple[int, ...]:
        return self._word(word)[0]

    def _counts(self, title: str, text: str) -> tuple[dict[int, int], float]:
        """Feature counts of an item, and the share of its words the model knows (the same
        counts as ``analyze``: a repeated field's features are found once, then repeated)."""
        ids: list[int] = []
        heads = self._heads
        known = total = 0
        word = self._word
        cache = self._cache
        for words, times in _fields(title, text):
            start = len(ids)
            learned_words = 0
            for w in words:
                got = cache.get(w) or word(w)  # the cache inline: most words are in it
                learned_words += got[1]
                ids += got[0]
            for a, b in itertools.pairwise(words):
                second = heads.get(a)  # most words start no learned pair: no string is built
                if second is not None:
                    j = second.get(b)
                    if j is not None:
                        ids.append(j)
            if times > 1:
                ids += ids[start:] * (times - 1)
            known += learned_words * times
            total += len(words) * times
        # Counter counts in C: most of the cost of scoring an item is here.
        return Counter(ids), known / total if total else 0.0

    def _vectors(
        self, items: Sequence[tuple[str, str]]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.int64], list[float]]:
        """TF-IDF values (sublinear tf, L2-normalized per item) of ``items``, as parallel arrays
        (item row, value, feature id), and each item's share of known words."""
        indices: list[int] = []
        tfs: list[int] = []
        indptr = [0]
        shares: list[float] = []
        for title, text in items:
            counts, known = self._counts(title, text)
            shares.append(known)
            indices.extend(counts)
            tfs.extend(counts.values())
            indptr.append(len(indices))
        idx = np.asarray(indices, dtype=np.int64)
        data = (np.log(np.asarray(tfs, dtype=np.float64)) + 1.0) * self.idf[idx]
        ptr = np.asarray(indptr, dtype=np.int64)
        rows = np.repeat(np.arange(len(items)), np.diff(ptr))
        norms = np.sqrt(np.bincount(rows, weights=data * data, minlength=len(items)))
        return rows, data / np.where(norms > 0, norms, 1.0)[rows], idx, shares

    def _decide(
        self, items: Sequence[tuple[str, str]]
    ) -> tuple[npt.NDArray[np.float64], list[float]]:
        rows, data, idx, shares = self._vectors(items)
        scores = np.empty((len(items), len(self.topics)))
        for t in range(len(self.topics)):
            weights = data * self.coef[idx, t]
            scores[:, t] = np.bincount(rows, weights=weights, minlength=len(items))
        return scores + self.intercept, shares

    def decision(self, items: Sequence[tuple[str, str]]) -> npt.NDArray[np.float64]:
        """Log-odds per item and topic, shape (len(items), len(topics))."""
        return self._decide(items)[0]

    def predict(self, items: Sequence[tuple[str, str]]) -> list[dict[str, float]]:
        """Per item (title, text): the probability of each topic the model knows; an empty
        dict (no opinion) for an item too few of whose words it knows (``MIN_KNOWN_WORDS``)."""
        scores, shares = self._decide(items)
        probs = 1.0 / (1.0 + np.exp(-scores))
        return [
            dict(zip(self.topics, map(float, row), strict=True)) if known >= MIN_KNOWN_WORDS else {}
            for row, known in zip(probs, shares, strict=True)
        ]

    def probabilities(self, title: str, text: str) -> Mapping[str, float]:
        return self.predict([(title, text)])[0]

    def known_share(self, title: str, text: str) -> float:
        """The share of the item's words the model was trained on."""
        return self._counts(title, text)[1]

    def drivers(self, title: str, text: str, topic: str, n: int = 6) -> tuple[float, list[Driver]]:
        """The probability of ``topic`` and the words of the item that pushed it most, either
        way (a word's own weight plus its letter pieces and the word pairs it is part of)."""
        t = self.topics.index(topic)
        _rows, data, idx, _shares = self._vectors([(title, text)])
        weight = dict(zip(idx.tolist(), (data * self.coef[idx, t]).tolist(), strict=True))
        per_word: dict[str, float] = {}
        seen: set[int] = set()
        for words in _words(title, text):
            for w in words:
                for i in self._word_ids(w):
                    if i not in seen:  # a feature's weight is counted once, for its first word
                        seen.add(i)
                        per_word[w] = per_word.get(w, 0.0) + weight.get(i, 0.0)
                per_word.setdefault(w, 0.0)
            for a, b in itertools.pairwise(words):
                j = self._pairs.get(f"{a} {b}")
                if j is not None and j not in seen:
                    seen.add(j)
                    per_word[f"{a} {b}"] = per_word.get(f"{a} {b}", 0.0) + weight.get(j, 0.0)
        logit = float(sum(weight.values()) + self.intercept[t])
        prob = 1.0 / (1.0 + math.exp(-logit))
        ranked = sorted(per_word.items(), key=lambda kv: -abs(kv[1]))
        return prob, [Driver(w, round(v, 3)) for w, v in ranked[:n] if abs(v) >= 0.005]

    # ------------------------------------------------------------------ persistence

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "kind": "tfidf-words-pairs-pieces+logistic-regression",
            "pieces": [CHAR_MIN, CHAR_MAX],
            "max_text_chars": MAX_TEXT_CHARS,
            "topics": list(self.topics),
            "data_sha256": self.data_hash,
            "trained_on": self.trained_on,
            "intercept": [round(float(v), 5) for v in self.intercept],
            "features": list(self.features),
            "idf": [round(float(v), 4) for v in self.idf],
            "coef": [[round(float(v), 4) for v in row] for row in self.coef],
        }

    @classmethod
    def from_json(cls, data: Any, source: str) -> TextModel:
        """A model from its JSON form; anything malformed is a UsageError naming ``source``."""
        try:
            if not isinstance(data, dict) or data.get("format") != FORMAT:
                got = data.get("format") if isinstance(data, dict) else None
                raise UsageError(f"{source}: not a digest topic model of format {FORMAT} ({got})")
            if (
                data.get("pieces", [CHAR_MIN, CHAR_MAX]) != [CHAR_MIN, CHAR_MAX]
                or data.get("max_text_chars", MAX_TEXT_CHARS) != MAX_TEXT_CHARS
            ):
                raise UsageError(
                    f"{source}: trained with other features than this version reads: "
                    "retrain it with `digest topics learn`"
                )
            topics = tuple(str(t) for t in data["topics"])
            features = tuple(str(f) for f in data["features"])
            idf = np.asarray(data["idf"], dtype=np.float64)
            coef = np.asarray(data["coef"], dtype=np.float64).reshape(len(features), len(topics))
            intercept = np.asarray(data["intercept"], dtype=np.float64)
            if idf.shape != (len(features),) or intercept.shape != (len(topics),):
                raise ValueError("sizes do not agree")
            trained_on = data.get("trained_on") or {}
            return cls(
                topics,
                features,
                idf,
                coef,
                intercept,
                str(data.get("data_sha256", "")),
                trained_on if isinstance(trained_on, dict) else {},
            )
        except UsageError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"{source}: not a valid topic model ({exc})") from None

    def save(self, path: Path) -> None:
        """Written as gzip'd JSON (``.gz``) or plain JSON, atomically."""
        path.parent.mkdir(parents=True, exist_ok=True)
        raw = json.dumps(self.to_json(), ensure_ascii=False, separators=(",", ":")).encode()
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(gzip.compress(raw, mtime=0) if path.suffix == ".gz" else raw)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> TextModel:
        try:
            raw = path.read_bytes()
            if raw[:2] == b"\x1f\x8b":
                raw = gzip.decompress(raw)
            data = json.loads(raw)
        except FileNotFoundError:
            raise UsageError(f"{path}: no topic model there") from None
        except (OSError, EOFError, ValueError) as exc:
            raise UsageError(f"{path}: cannot read the topic model: {exc}") from None
        return cls.from_json(data, str(path))


# --------------------------------------------------------------------------- training


def _fit_vocabulary(docs: Sequence[list[str]]) -> tuple[dict[str, int], npt.NDArray[np.float64]]:
    df: dict[str, int] = {}
    for feats in docs:
        for f in set(feats):
            df[f] = df.get(f, 0) + 1
    names = sorted(f for f, n in df.items() if n >= MIN_DF)
    n = len(docs)
    # Smoothed IDF, as scikit-learn's TfidfTransformer computes it.
    idf = np.array([math.log((1 + n) / (1 + df[f])) + 1.0 for f in names])
    return {f: i for i, f in enumerate(names)}, idf


def _matrix(
    docs: Sequence[list[str]], vocab: Mapping[str, int], idf: npt.NDArray[np.float64]
) -> Any:
    from scipy.sparse import csr_matrix

    indices: list[int] = []
    data: list[float] = []
    indptr = [0]
    for feats in docs:
        counts: dict[int, int] = {}
        for f in feats:
            i = vocab.get(f)
            if i is not None:
                counts[i] = counts.get(i, 0) + 1
        row = [(i, (math.log(c) + 1.0) * float(idf[i])) for i, c in counts.items()]
        norm = math.sqrt(sum(v * v for _, v in row)) or 1.0
        indices.extend(i for i, _ in row)
        data.extend(v / norm for _, v in row)
        indptr.append(len(indices))
    return csr_matrix((data, indices, indptr), shape=(len(docs), len(vocab)))


def train(
    examples: Sequence[Example],
    topics: Sequence[str],
    *,
    c: float = DEFAULT_C,
    trained_on: dict[str, Any] | None = None,
) -> TextModel:
    """Fit one logistic regression per topic on ``examples`` (each topic on the examples that
    speak for it). A topic needs at least one positive and one negative example."""
    from sklearn.linear_model import LogisticRegression

    docs = [analyze(e.title, e.text) for e in examples]
    vocab, idf = _fit_vocabulary(docs)
    x = _matrix(docs, vocab, idf)
    coef = np.zeros((len(vocab), len(topics)))
    intercept = np.zeros(len(topics))
    for t, topic in enumerate(topics):
        rows = [i for i, e in enumerate(examples) if e.speaks_for(topic)]
        y = np.array([topic in examples[i].labels for i in rows])
        if y.all() or not y.any():
            raise UsageError(
                f"topics learn: {topic!r} needs labeled items both in and out of it "
                f"({int(y.sum())} in, {int((~y).sum())} out)"
            )
        clf = LogisticRegression(C=c, solver="liblinear", max_iter=1000)
        clf.fit(x[rows], y)
        coef[:, t] = clf.coef_[0]
        intercept[t] = clf.intercept_[0]
    names = [""] * len(vocab)
    for f, i in vocab.items():
        names[i] = f
    info = dict(trained_on or {})
    info.setdefault("items", len(examples))
    info["per_topic"] = {
        topic: {
            "in": sum(1 for e in examples if e.speaks_for(topic) and topic in e.labels),
            "out": sum(1 for e in examples if e.speaks_for(topic) and topic not in e.labels),
        }
        for topic in topics
    }
    return TextModel(tuple(topics), tuple(names), idf, coef, intercept, data_hash(examples), info)


def cross_val_probabilities(
    examples: Sequence[Example],
    topics: Sequence[str],
    *,
    groups: Sequence[int] | None = None,
    folds: int = 5,
    repeats: int = 2,
    c: float = DEFAULT_C,
) -> dict[str, npt.NDArray[np.float64]]:
    """Out-of-fold probabilities per topic (averaged over ``repeats`` shuffled fold splits):
    each item is scored by models that never saw it (nor, with ``groups``, its story)."""
    from sklearn.model_selection import StratifiedGroupKFold

    n = len(examples)
    grp = np.asarray(groups if groups is not None else range(n))
    kinds: dict[tuple[str, ...], int] = {}
    strata = np.array([kinds.setdefault(tuple(sorted(e.labels)), len(kinds)) for e in examples])
    out = {t: np.zeros(n) for t in topics}
    for rep in range(repeats):
        split = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=rep)
        for tr, te in split.split(np.zeros(n), strata, grp):
            model = train([examples[i] for i in tr], topics, c=c)
            probs = model.predict([(examples[i].title, examples[i].text) for i in te])
            for t in topics:
                out[t][te] += np.array([p.get(t, 0.0) for p in probs]) / repeats
    return out


# --------------------------------------------------------------------------- with the rules


def learned_keeps(
    tdef: TopicDef, m: TopicMatch, prob: float | None, *, outright: bool = True
) -> bool:
    """Whether the model's probability would keep an item the rules drop: at or above the
    topic's floor, not vetoed by an exclude term (the editors' explicit word), in scope and,
    to keep it ``outright`` when the topic sets ``learned_needs_term``, mentioning one of the
    topic's include terms. A near miss for the desk (``outright=False``) needs no term."""
    return (
        prob is not None
        and not m.kept
        and not m.vetoes
        and not m.out_of_scope
        and prob >= tdef.learned_floor
        and (not outright or not tdef.learned_needs_term or any(h.weight > 0 for h in m.hits))
    )


def combine(
    topics: Sequence[TopicDef], matches: Sequence[TopicMatch], probs: Mapping[str, float]
) -> tuple[TopicMatch, ...]:
    """The config's decisions: the rules', plus the items the model keeps for the topics whose
    ``learned`` is "keep" (marked with their probability)."""
    out = list(matches)
    for i, (tdef, m) in enumerate(zip(topics, matches, strict=True)):
        if tdef.learned == "keep" and learned_keeps(tdef, m, probs.get(tdef.id)):
            out[i] = replace(m, kept=True, learned=round(probs[tdef.id], 4))
    return tuple(out)


def needs_model(topics: Sequence[TopicDef]) -> bool:
    """Whether decisions depend on the model (a topic with ``learned = "keep"``)."""
    return any(t.learned == "keep" for t in topics)
