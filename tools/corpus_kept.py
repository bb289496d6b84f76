"""Which items of the shared real corpus (../shared/corpus/feeds-real) a config's topics keep.

    python tools/corpus_kept.py config/digest.toml > kept.txt   # "topic<TAB>feed<TAB>title" lines
    python tools/corpus_kept.py config/digest.toml --rules  # the rules alone (no learned scorer)
Diff two runs to see what a rule change lets in or out of the 1,921 general real items. Lines
kept by the learned scorer (topics with learned = "keep") end with "<TAB>learned <probability>".
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

from digest.config import load
from digest.pipeline.learning import decide_with_model
from digest.reader.parse import parse_feed
from digest.sanitize import plain_text
from digest.topics import TopicMatcher

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus" / "feeds-real"


def main() -> None:
    settings = load(Path(sys.argv[1]))
    rules_only = "--rules" in sys.argv[2:]
    matcher = TopicMatcher(settings.topic_defs())
    now = datetime(2026, 1, 1, tzinfo=UTC)
    items = 0
    for f in sorted(CORPUS.iterdir()):
        feed = parse_feed(f.read_bytes(), url=f"https://corpus.test/{f.name}", fetched_at=now)
        texts = [(i.title, plain_text(i.content_html or i.summary_html)) for i in feed.items]
        decisions = [matcher.match(title, text) for title, text in texts]
        if not rules_only:
            decisions = decide_with_model(settings, texts, decisions)
        for (title, _), ms in zip(texts, decisions, strict=True):
            items += 1
            for m in ms:
                if m.kept:
                    how = "" if m.learned is None else f"\tlearned {m.learned:.2f}"
                    print(f"{m.topic_id}\t{f.name}\t{title}{how}")
    print(f"# {items} items read", file=sys.stderr)


main()
