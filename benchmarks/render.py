"""Render benchmark: one MJML compile of a 40-item issue, and personalize() per second.

Run: .venv/bin/python benchmarks/render.py [--recipients 200000]
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime, timedelta

from mjml import mjml2html

from digest.models import AlsoCovered, IssueContent, IssueEntry, IssueSection
from digest.render import RenderCache, personalize, render_issue
from digest.render.core import _context, _render_template, select_sections
from digest.render.i18n import words

WORDS = (
    "Le gouvernement a présenté une nouvelle stratégie pour le cloud souverain, avec des "
    "exigences de qualification SecNumCloud pour les données sensibles des administrations "
    "et des opérateurs d'importance vitale, tandis que les fournisseurs américains annoncent "
    "des offres hébergées en Europe sous contrôle de partenaires locaux."
)


def issue(items: int = 40) -> IssueContent:
    start = datetime(2025, 11, 3, 7, tzinfo=UTC)
    topics = (("sovereign_cloud", "Sovereign cloud"), ("data_protection", "Data protection"))
    sections = []
    for t, (topic_id, title) in enumerate(topics):
        entries = tuple(
            IssueEntry(
                item_id=t * 100 + i,
                url=f"https://news.example.org/{topic_id}/2025/11/article-{i}-with-a-long-slug",
                title=f"Article {i}: the European cloud & data rules, week {i % 7}",
                source=f"Source {i % 9}",
                published=start + timedelta(hours=4 * i),
                summary=WORDS,
                topic_id=topic_id,
                summary_engine="llm:mistral-small" if i % 3 == 0 else "extractive",
                also=(AlsoCovered("Les Echos", f"https://www.lesechos.fr/a/{i}"),) if i % 4 else (),
            )
            for i in range(items // len(topics))
        )
        sections.append(IssueSection(topic_id, title, entries, titles=(("fr", title + " (fr)"),)))
    return IssueContent(
        42, "Veille cloud", "fr", "Europe/Paris", start + timedelta(days=7), start,
        start + timedelta(days=7), tuple(sections), base_url="https://digest.example.org",
    )  # fmt: skip


def timed(fn: object, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--recipients", type=int, default=200_000)
    ap.add_argument(
        "--quick", action="store_true", help="small sizes: a check that it runs (make bench)"
    )
    args = ap.parse_args()
    if args.quick:  # small sizes; options given explicitly still win
        ap.set_defaults(runs=5, recipients=5_000)
        args = ap.parse_args()

    content = issue(40)
    w = words(content.language, content.timezone)
    ctx = _context(content, select_sections(content, None), w)
    ctx.update(subject="s", machine_mark=True)
    mjml = _render_template("digest.mjml.j2", **ctx)
    compile_s = timed(lambda: mjml2html(mjml, disable_comments=True, fonts={}), args.runs)
    full_s = timed(lambda: render_issue(content), args.runs)
    rendered = render_issue(content)

    cache = RenderCache()
    cache.get(content, language="fr", topics=["data_protection"])
    hit_s = timed(lambda: cache.get(content, language="fr", topics=["data_protection"]), 1000)

    n = args.recipients
    t0 = time.perf_counter()
    size = 0
    for i in range(n):
        html, text = personalize(
            rendered,
            name=f"Lecteur {i}" if i % 2 else None,
            unsubscribe_url=f"https://digest.example.org/unsubscribe/{i:024x}",
            preferences_url=f"https://digest.example.org/preferences/{i:024x}",
        )
        size += len(html) + len(text)
    per_s = n / (time.perf_counter() - t0)

    ms = 1000.0
    print(
        f"issue: {content.item_count} items, MJML source {len(mjml) / 1024:.1f} KiB, "
        f"HTML {len(rendered.html) / 1024:.1f} KiB, text {len(rendered.text) / 1024:.1f} KiB"
    )
    print(
        f"mjml2html compile: median {statistics.median(compile_s) * ms:.1f} ms, "
        f"min {min(compile_s) * ms:.1f} ms ({args.runs} runs)"
    )
    print(
        f"render_issue (Jinja + MJML + text): median {statistics.median(full_s) * ms:.1f} ms, "
        f"min {min(full_s) * ms:.1f} ms"
    )
    print(f"RenderCache hit: median {statistics.median(hit_s) * 1e6:.1f} µs")
    print(
        f"personalize: {per_s:,.0f} recipients/s over {n:,} "
        f"({1e6 / per_s:.1f} µs each; 1,000,000 recipients ≈ {1e6 / per_s:.0f} s on one core)"
    )
    print(f"(checksum {size})")  # keeps the loop's work observable


if __name__ == "__main__":
    main()
