"""Benchmark: extractive summaries of 1,000 synthetic articles of ~600 words (half French, half
English, HTML with boilerplate lines), on one core; prints articles per second.

Run: ``.venv/bin/python benchmarks/summarize.py [--articles 1000] [--words 600] [--declared]``.
Without ``--declared`` the language is detected for every article (the costlier case).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import time

from digest.summarize import ExtractiveSummarizer

EN_WORDS = (
    "the", "government", "cloud", "data", "provider", "sovereign", "european", "market",
    "hosting", "companies", "ministry", "security", "report", "contract", "operators",
    "infrastructure", "law", "american", "regulators", "customers", "investment", "billion",
    "strategy", "public", "services", "users", "privacy", "protection", "agency", "court",
    "decision", "servers", "platform", "network", "the", "of", "and", "to", "in", "that", "for",
    "with", "was", "by", "on"
)  # fmt: skip
FR_WORDS = (
    "le", "gouvernement", "cloud", "données", "hébergeur", "souverain", "marché", "européen",
    "entreprises", "ministère", "sécurité", "rapport", "contrat", "opérateurs",
    "infrastructure", "loi", "américaine", "régulateur", "clients", "investissement",
    "milliards", "stratégie", "services", "publics", "utilisateurs", "protection", "autorité",
    "décision", "serveurs", "plateforme", "réseau", "le", "la", "les", "des", "du", "et", "est",
    "pour", "dans", "sur", "qui", "avec"
)  # fmt: skip
EN_OPENERS = ["The", "In", "According to", "Last week,", "Mr. Smith said", "Since 2019,"]
FR_OPENERS = [
    "Le",
    "Selon",
    "En 2023,",
    "M. Dupont a indiqué que",
    "Mme Martin estime que",
    "Depuis",
]
BOILERPLATE = {
    "en": ["Read more", "Share this article", "Source : Reuters", "Photo: AFP", "© 2026 Example"],
    "fr": ["Lire la suite", "Partager sur Facebook", "Source : AFP", "Crédit photo : DR"],
}


def sentence(rng: random.Random, lang: str) -> str:
    words = EN_WORDS if lang == "en" else FR_WORDS
    opener = rng.choice(EN_OPENERS if lang == "en" else FR_OPENERS)
    body = " ".join(rng.choice(words) for _ in range(rng.randint(10, 26)))
    number = f" {rng.randint(1, 9)}.{rng.randint(0, 9)} billion" if rng.random() < 0.2 else ""
    return f"{opener} {body}{number}."


def article(rng: random.Random, lang: str, words: int) -> tuple[str, str]:
    title = " ".join(rng.choice(EN_WORDS if lang == "en" else FR_WORDS) for _ in range(8))
    paragraphs: list[str] = [f"<h1>{title}</h1>"]
    count = 0
    while count < words:
        sentences = [sentence(rng, lang) for _ in range(rng.randint(2, 5))]
        count += sum(len(s.split()) for s in sentences)
        paragraphs.append("<p>" + " ".join(sentences).replace("&", "&amp;") + "</p>")
    paragraphs += [f"<p>{line}</p>" for line in rng.sample(BOILERPLATE[lang], 3)]
    return title, "\n".join(paragraphs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=1000)
    parser.add_argument("--words", type=int, default=600)
    parser.add_argument("--declared", action="store_true", help="pass the language, as feeds do")
    parser.add_argument(
        "--quick", action="store_true", help="small sizes: a check that it runs (make bench)"
    )
    args = parser.parse_args()
    if args.quick:  # small sizes; options given explicitly still win
        parser.set_defaults(articles=100)
        args = parser.parse_args()
    rng = random.Random(42)
    langs = ["en" if i % 2 else "fr" for i in range(args.articles)]
    articles = [(lang, *article(rng, lang, args.words)) for lang in langs]
    summarizer = ExtractiveSummarizer(max_words=60)
    for lang, title, html in articles[:20]:  # warm up: simplemma loads its dictionaries once
        summarizer.summarize(title, html, language=lang if args.declared else None)

    wall0, cpu0 = time.perf_counter(), time.process_time()
    per: list[float] = []
    wrong = 0
    for lang, title, html in articles:
        t = time.perf_counter()
        summary = summarizer.summarize(title, html, language=lang if args.declared else None)
        per.append(time.perf_counter() - t)
        wrong += summary.language != lang or not summary.text
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0

    avg_words = statistics.mean(len(html.split()) for _, _, html in articles)
    print(f"python {platform.python_version()}, one process, one thread ({os.cpu_count()} cores)")
    print(
        f"{args.articles} articles, ~{avg_words:.0f} words of HTML each, language "
        f"{'declared' if args.declared else 'detected'}"
    )
    print(f"wall {wall:.2f} s, CPU {cpu:.2f} s")
    print(
        f"throughput: {args.articles / wall:.0f} articles/s wall, {args.articles / cpu:.0f} /s CPU"
    )
    print(
        f"per article: median {statistics.median(per) * 1000:.2f} ms, "
        f"p95 {sorted(per)[int(len(per) * 0.95)] * 1000:.2f} ms"
    )
    print(f"wrong language or empty summary: {wrong}")


if __name__ == "__main__":
    main()
