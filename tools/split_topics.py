"""Split the labeled topic items into tuning and held-out sets (append-only, deterministic).

    python tools/split_topics.py            # assign new items, keep every existing assignment
    python tools/split_topics.py --check    # exit 1 if an item is unassigned or leaks across sets

Inputs: tests/data/topics_dev.jsonl (always tuning: the rules were tuned on it) and
tests/data/topics/labeled-*.jsonl. Outputs: tests/data/topics/tuning.jsonl and heldout.jsonl.

Items are first grouped into *stories*: same URL, or titles + first sentences sharing enough
distinctive words (several outlets reporting one event). A story goes to one side only, so a
held-out item is never the same story as a tuning item. Groups are ordered by a SHA-256 hash of
their smallest key and fill the held-out set until it holds about 40 % of each (language,
labels) stratum. An item already in tuning.jsonl or heldout.jsonl never moves; a new item that
belongs to an already assigned story follows it. When a new item's words chain two stories that
are already on different sides (several CNIL fines reported alike), nothing moves: the new item
follows the assigned item it shares most words with.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import unicodedata
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
OUT = DATA / "topics"
HELDOUT_SHARE = 0.4

# Words too common in this corpus to tie two stories together.
_STOP_TEXT = """
    about after again against also among because been before being between both cannot could
    data does down during each from have having here into itself just more most much must only
    other over same should since some such than that their them then there these they this those
    through under until very were what when where which while will with would your year years
    said says today week new news million billion first last users user company companies
    avec dans pour sont leur leurs plus cette mais comme être fait entre après depuis deux
    selon aussi donc alors sans sous chez était ainsi encore toute tous tout très données
    """
STOP = set(_STOP_TEXT.split())


def fold(text: str) -> str:
    text = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in text if not unicodedata.combining(c))


def key(row: dict[str, object]) -> str:
    """An item's identity: its URL (when it has one) and its folded title."""
    title = re.sub(r"[^a-z0-9]+", " ", fold(str(row["title"]))).strip()
    return f"{row.get('url', '')}#{title}"


def words(row: dict[str, object]) -> set[str]:
    text = fold(f"{row['title']} {row.get('summary', '')}")
    return {w for w in re.findall(r"[a-z0-9]{4,}", text) if w not in STOP}


def load(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def stories(rows: list[dict[str, object]]) -> list[int]:
    """Union-find over rows: same URL, or >= 4 shared distinctive words and Jaccard >= 0.25."""
    parent = list(range(len(rows)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(a: int, b: int) -> None:
        parent[find(a)] = find(b)

    by_url: dict[str, int] = {}
    for i, row in enumerate(rows):
        url = str(row.get("url") or "")
        if url:
            if url in by_url:
                union(i, by_url[url])
            by_url[url] = i
    bags = [words(r) for r in rows]
    for i in range(len(rows)):
        for j in range(i + 1, len(rows)):
            shared = len(bags[i] & bags[j])
            if shared >= 4 and shared / len(bags[i] | bags[j]) >= 0.25:
                union(i, j)
    return [find(i) for i in range(len(rows))]


def stratum(row: dict[str, object]) -> tuple[str, tuple[str, ...]]:
    labels = row.get("labels")
    assert isinstance(labels, list)
    return (str(row.get("lang")), tuple(sorted(str(x) for x in labels)))


def main() -> int:
    check = "--check" in sys.argv
    dev = load(DATA / "topics_dev.jsonl")
    labeled = [r for f in sorted(OUT.glob("labeled-*.jsonl")) for r in load(f)]
    tuning_old, heldout_old = load(OUT / "tuning.jsonl"), load(OUT / "heldout.jsonl")
    assigned: dict[str, str] = {key(r): "tuning" for r in tuning_old}
    assigned.update({key(r): "heldout" for r in heldout_old})
    for r in dev:
        r.setdefault("source", "tests/data/topics_dev.jsonl")
        assigned.setdefault(key(r), "tuning")

    rows = dev + labeled
    seen: set[str] = set()
    unique = []
    for r in rows:  # one row per identity (the labeled files are deduplicated already)
        if key(r) not in seen:
            seen.add(key(r))
            unique.append(r)
    rows = unique
    group = stories(rows)
    members: dict[int, list[int]] = defaultdict(list)
    for i, g in enumerate(group):
        members[g].append(i)

    side: dict[int, str] = {}
    bags = [words(r) for r in rows]
    for g, idx in list(members.items()):  # a story with an assigned member keeps that side
        sides = {assigned[key(rows[i])] for i in idx if key(rows[i]) in assigned}
        if len(sides) > 1:
            # A new item chained two stories already on different sides: never move an
            # assigned item; each new item follows the assigned item it is closest to.
            old = [i for i in idx if key(rows[i]) in assigned]
            print(f"note: {len(idx)} items chained across both sets, kept apart", file=sys.stderr)
            del members[g]
            for i in idx:
                if key(rows[i]) in assigned:
                    nearest = i
                else:
                    nearest = max(
                        old, key=lambda j: len(bags[i] & bags[j]) / (len(bags[i] | bags[j]) or 1)
                    )
                sub = -1 - i  # a one-item story of its own, on its nearest neighbour's side
                group[i] = sub
                members[sub] = [i]
                side[sub] = assigned[key(rows[nearest])]
            continue
        if sides:
            side[g] = sides.pop()
    if check:
        missing = [rows[i]["title"] for g, idx in members.items() if g not in side for i in idx]
        if missing:
            print(f"{len(missing)} unassigned item(s), e.g. {missing[:3]}", file=sys.stderr)
            return 1
        print(f"ok: {len(rows)} items, every story on one side")
        return 0

    total = Counter(stratum(r) for r in rows)
    target = {s: round(HELDOUT_SHARE * n) for s, n in total.items()}
    held = Counter(
        stratum(rows[i]) for g, idx in members.items() if side.get(g) == "heldout" for i in idx
    )
    order = sorted(
        (g for g in members if g not in side),
        key=lambda g: hashlib.sha256(min(key(rows[i]) for i in members[g]).encode()).hexdigest(),
    )
    for g in order:
        need = Counter(stratum(rows[i]) for i in members[g])
        if all(held[s] + n <= target[s] + (1 if n > 1 else 0) for s, n in need.items()):
            side[g] = "heldout"
            held.update(need)
        else:
            side[g] = "tuning"

    out = {"tuning": [], "heldout": []}
    for i, r in enumerate(rows):
        out[side[group[i]]].append(r)
    for name, items in out.items():
        with (OUT / f"{name}.jsonl").open("w", encoding="utf-8") as fh:
            for r in items:
                fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    for s in sorted(total):
        h = sum(1 for r in out["heldout"] if stratum(r) == s)
        print(f"{s[0]} {'+'.join(s[1]) or '(none)':35} {total[s]:4} items, {h:4} held out")
    print(f"tuning {len(out['tuning'])}, held-out {len(out['heldout'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
