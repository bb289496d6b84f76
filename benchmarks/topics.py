"""Topic matching throughput: 10,000 synthetic items of ~150 words through the default topics.

Run: .venv/bin/python benchmarks/topics.py [--items N] [--words W]
Prints items per second on one core (target >= 50,000), for French, English and the mix; then
the fetch's whole decision (``pipeline.relevance.Decider``: the topics, a ``[filters] block``
list of words, sources and URL patterns, a feed's include/exclude, and the language check).
"""

from __future__ import annotations

import argparse
import random
import time
import tomllib
from datetime import UTC, datetime
from pathlib import Path

from digest.config import parse_settings
from digest.models import FeedSpec, Item
from digest.pipeline.relevance import Decider
from digest.pipeline.wiring import make_decider
from digest.topics import TopicMatcher

REPO = Path(__file__).resolve().parent.parent

# Ordinary news prose, so the text looks like what feeds carry: accents, elisions, punctuation.
FR_WORDS = [
    "le",
    "la",
    "les",
    "des",
    "une",
    "un",
    "et",
    "à",
    "l’",
    "d’",
    "en",
    "pour",
    "sur",
    "avec",
    "dans",
    "que",
    "qui",
    "ne",
    "pas",
    "plus",
    "été",
    "être",
    "gouvernement",
    "entreprise",
    "marché",
    "projet",
    "société",
    "année",
    "début",
    "français",
    "européenne",
    "données",
    "système",
    "réseau",
    "sécurité",
    "numérique",
    "services",
    "clients",
    "ministère",
    "déclaré",
    "annoncé",
    "a",
    "expliqué",
    "selon",
    "président",
    "directeur",
    "général",
    "millions",
    "d’euros",
    "croissance",
    "économie",
    "régions",
    "élus",
    "collectivités",
    "opérateurs",
    "utilisateurs",
    "réglementation",
    "Bruxelles",
    "Paris",
    "hôpital",
    "sénateurs",
]
EN_WORDS = [
    "the",
    "a",
    "of",
    "and",
    "to",
    "in",
    "for",
    "on",
    "with",
    "that",
    "is",
    "was",
    "by",
    "as",
    "at",
    "from",
    "it",
    "be",
    "has",
    "have",
    "said",
    "will",
    "company",
    "government",
    "market",
    "project",
    "year",
    "customers",
    "services",
    "security",
    "network",
    "digital",
    "data",
    "system",
    "users",
    "regulators",
    "officials",
    "million",
    "billion",
    "growth",
    "economy",
    "according",
    "chief",
    "executive",
    "statement",
    "announced",
    "quarter",
    "report",
    "European",
    "Commission",
    "London",
    "hospital",
]
# Topic vocabulary sprinkled into a share of the items, as in real topic-oriented feeds.
FR_TOPIC = [
    "cloud souverain",
    "SecNumCloud",
    "la CNIL",
    "le RGPD",
    "données personnelles",
    "hébergement",
    "Cloud Act",
    "hyperscalers américains",
    "mise en demeure",
    "souveraineté numérique",
    "Gaia-X",
]
EN_TOPIC = [
    "sovereign cloud",
    "GDPR",
    "personal data",
    "data breach",
    "privacy",
    "consent",
    "CLOUD Act",
    "hyperscalers",
    "data protection authority",
    "cloud",
    "Schrems II",
]


def make_items(n: int, words: int, lang: str, seed: int = 42) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    vocab, topic = (FR_WORDS, FR_TOPIC) if lang == "fr" else (EN_WORDS, EN_TOPIC)
    items = []
    for i in range(n):
        body = rng.choices(vocab, k=words)
        for k in range(8, words, 14):  # sentences
            body[k] = body[k] + "."
        if i % 4 == 0:  # one item in four is on (or near) a topic
            for _ in range(rng.randint(1, 4)):
                body[rng.randrange(words)] = rng.choice(topic)
        title = " ".join(rng.choices(vocab, k=9)).capitalize()
        if i % 8 == 0:
            title += " : " + rng.choice(topic)
        items.append((title, " ".join(body)))
    return items


def run(matcher: TopicMatcher, items: list[tuple[str, str]]) -> tuple[float, int]:
    start = time.process_time()
    kept = 0
    for title, text in items:
        for m in matcher.match(title, text):
            kept += m.kept
    return time.process_time() - start, kept


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=10_000)
    ap.add_argument("--words", type=int, default=150)
    ap.add_argument("--train", type=int, default=2_000, help="labeled items to train on")
    ap.add_argument("--config", type=Path, default=REPO / "config" / "topics.toml")
    ap.add_argument(
        "--quick", action="store_true", help="small sizes: a check that it runs (make bench)"
    )
    args = ap.parse_args()
    if args.quick:  # small sizes; options given explicitly still win
        ap.set_defaults(items=1_000, train=500)
        args = ap.parse_args()
    settings = parse_settings(tomllib.loads(args.config.read_text("utf-8")), str(args.config))
    t0 = time.perf_counter()
    matcher = TopicMatcher(settings.topic_defs())
    compile_s = time.perf_counter() - t0
    print(f"compiled {len(matcher.topics)} topics in {compile_s * 1000:.0f} ms")
    half = args.items // 2
    sets = {
        "fr": make_items(args.items, args.words, "fr"),
        "en": make_items(args.items, args.words, "en"),
        "mix": make_items(half, args.words, "fr", 1) + make_items(half, args.words, "en", 2),
    }
    run(matcher, sets["mix"][:500])  # warm caches
    for name, items in sets.items():
        best = min(run(matcher, items)[0] for _ in range(3))
        _, kept = run(matcher, items)
        rate = len(items) / best
        print(
            f"{name:>3}: {len(items)} items x {args.words} words: {best * 1000:.0f} ms CPU, "
            f"{rate:,.0f} items/s, {kept} topic decisions kept"
        )
    bench_decider(args.config, sets)
    bench_model(sets, args.train)


#: A block list as an editor would write one: words, a regex, sources and link patterns.
BLOCK = [
    "casino",
    "horoscope",
    "sponsored",
    "publireportage",
    "regex:bon[s]? plan[s]?",
    "source:Example Ads",
    "url:*/sponsored/*",
    "url:*/partenaires/*",
    "url:regex:/promo/[0-9]+$",
]


#: Items decided together, as the fetch decides a feed's new items (the model runs per batch).
BATCH = 100


def run_decider(decider: Decider, items: list[Item], spec: FeedSpec) -> tuple[float, int]:
    start = time.process_time()
    kept = 0
    for i in range(0, len(items), BATCH):
        for ms in decider.decide_many(items[i : i + BATCH], spec, "Bench"):
            kept += sum(m.kept for m in ms)
    return time.process_time() - start, kept


def bench_decider(config: Path, sets: dict[str, list[tuple[str, str]]]) -> None:
    data = tomllib.loads(config.read_text("utf-8"))
    feed = "https://bench.example/rss"
    data["filters"] = {"block": BLOCK}
    data["feeds"] = [{"url": feed, "exclude": ["recrutement", "job offer"]}]
    settings = parse_settings(data, str(config))
    [spec] = settings.feed_specs()
    now = datetime.now(UTC)
    modes = {t.id: t.learned for t in settings.topic_defs()}
    for learned in (False, True):
        if learned:
            decider = make_decider(settings)
            print(
                f"decider + learned scorer ({modes}; batches of {BATCH} items as in the fetch; "
                "the model scores the items a 'keep' topic's rules drop)"
            )
        else:
            off = {k: {**v, "learned": "off"} for k, v in data["topics"].items()}
            decider = make_decider(parse_settings({**data, "topics": off}, str(config)))
            print(f"decider: topics + {len(BLOCK)} block rules + a feed's exclude + languages")
        _decide_sets(decider, spec, feed, now, sets)
        print("  the same, the feed declaring its language (fr, en; half and half for mix)")
        _decide_sets(decider, spec, feed, now, sets, declared=True)


def _decide_sets(
    decider: Decider,
    spec: FeedSpec,
    feed: str,
    now: datetime,
    sets: dict[str, list[tuple[str, str]]],
    *,
    declared: bool = False,
) -> None:
    for name, pairs in sets.items():
        half = len(pairs) // 2
        items = [
            Item(
                feed,
                str(i),
                f"https://bench.example/{i}",
                "",
                title,
                now,
                content_html=text,
                # make_items builds the mix French first, then English
                language=(name if name != "mix" else "fr" if i < half else "en")
                if declared
                else None,
            )
            for i, (title, text) in enumerate(pairs)
        ]
        best = min(run_decider(decider, items, spec)[0] for _ in range(3))
        _, kept = run_decider(decider, items, spec)
        print(
            f"{name:>3}: {len(items)} items: {best * 1000:.0f} ms CPU, "
            f"{len(items) / best:,.0f} items/s, {kept} topic decisions kept"
        )


def bench_model(sets: dict[str, list[tuple[str, str]]], train_items: int) -> None:
    """The shipped model alone (every item scored, one batch per 100), and training time."""
    from digest.pipeline.learning import SHIPPED_MODEL, decide_with_model
    from digest.topics import parse_eval_lines
    from digest.topics.learned import Example, TextModel, train

    t0 = time.perf_counter()
    model = TextModel.load(SHIPPED_MODEL)
    print(
        f"learned scorer: {len(model.features)} features, loaded in "
        f"{(time.perf_counter() - t0) * 1000:.0f} ms ({SHIPPED_MODEL.stat().st_size:,} bytes)"
    )
    settings = parse_settings(
        tomllib.loads((REPO / "config" / "topics.toml").read_text("utf-8")), "topics.toml"
    )
    matcher = TopicMatcher(settings.topic_defs())
    for name, pairs in sets.items():
        model.predict(pairs[:200])  # warm the word cache
        start = time.process_time()
        kept = 0
        for i in range(0, len(pairs), BATCH):
            batch = pairs[i : i + BATCH]
            rules = [matcher.match(title, text) for title, text in batch]
            for ms in decide_with_model(settings, batch, rules):
                kept += sum(m.kept for m in ms)
        cpu = time.process_time() - start
        print(
            f"{name:>3}: topics (rule matcher) + learned scorer, {len(pairs)} items: "
            f"{len(pairs) / cpu:,.0f} items/s, {kept} topic decisions kept"
        )
        start = time.process_time()
        for i in range(0, len(pairs), BATCH):
            model.predict(pairs[i : i + BATCH])
        cpu = time.process_time() - start
        print(f"{name:>3}: model alone, {len(pairs)} items: {len(pairs) / cpu:,.0f} items/s")
    # Training: the tuning set's items, repeated with a number so that there are train_items
    # distinct ones (the held-out set is never read here either).
    lines = (REPO / "tests" / "data" / "topics" / "tuning.jsonl").read_text("utf-8").splitlines()
    rows = parse_eval_lines(lines, "tuning.jsonl")
    examples = [
        Example(f"{r.title} {i // len(rows)}", r.text, r.labels)
        for i, r in ((i, rows[i % len(rows)]) for i in range(train_items))
    ]
    start = time.perf_counter()
    fitted = train(examples, list(model.topics))
    wall = time.perf_counter() - start
    print(
        f"training on {train_items:,} labeled items ({len(fitted.features):,} features, "
        f"{len(model.topics)} topics): {wall:.1f} s"
    )


if __name__ == "__main__":
    main()
