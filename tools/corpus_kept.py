"""Which items of the shared real corpus (../shared/corpus/feeds-real) a config's topics keep.

    python tools/corpus_kept.py config/digest.toml > kept.txt   # one "topic<TAB>feed<TAB>title" line per kept item
Diff two runs to see what a rule change lets in or out of the 1,921 general real items.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

from digest.config import load
from digest.parse import parse_feed
from digest.sanitize import plain_text
from digest.topics import TopicMatcher

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus" / "feeds-real"


def main() -> None:
    matcher = TopicMatcher(load(Path(sys.argv[1])).topic_defs())
    now = datetime(2026, 1, 1, tzinfo=UTC)
    items = 0
    for f in sorted(CORPUS.iterdir()):
        feed = parse_feed(f.read_bytes(), url=f"https://corpus.test/{f.name}", fetched_at=now)
        for item in feed.items:
            items += 1
            text = plain_text(item.content_html or item.summary_html)
            for m in matcher.match(item.title, text):
                if m.kept:
                    print(f"{m.topic_id}\t{f.name}\t{item.title}")
    print(f"# {items} items read", file=sys.stderr)


main()
