"""Append labeled items (collector's helper): reads a JSON list of
[title, summary, labels "S"/"D"/"SD"/"", source, url, date, (optional) "slug"] from stdin,
skips duplicates (URL+title, or title) against the dev set and the labeled files, appends to
FILE."""

import json
import re
import sys
import unicodedata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CODES = {
    "S": ["sovereign_cloud"],
    "D": ["data_protection"],
    "SD": ["sovereign_cloud", "data_protection"],
    "": [],
}


def norm(t: str) -> str:
    t = unicodedata.normalize("NFKD", t.lower())
    t = "".join(c for c in t if not unicodedata.combining(c))
    return re.sub(r"[^a-z0-9]+", " ", t).strip()


def main() -> None:
    out = Path(sys.argv[1])
    lang = sys.argv[2]
    seen_titles: set[str] = set()
    seen_urls: set[str] = set()
    for f in [
        ROOT / "tests/data/topics_dev.jsonl",
        *sorted((ROOT / "tests/data/topics").glob("labeled-*.jsonl")),
    ]:
        if f.exists():
            for line in f.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    o = json.loads(line)
                    seen_titles.add(norm(o["title"]))
                    if o.get("url"):
                        seen_urls.add(o["url"] + "#" + norm(o["title"]))
    added = 0
    entries = json.load(sys.stdin)
    for entry in entries:  # validate all before writing any
        assert re.fullmatch(r"\d{4}(-\d\d-\d\d)?", entry[5]), entry
        assert len(entry[1]) <= 330, entry
        assert entry[2] in CODES, entry
    with out.open("a", encoding="utf-8") as fh:
        for entry in entries:
            title, summary, code, source, url, date = entry[:6]
            key = norm(title)
            if key in seen_titles or url + "#" + key in seen_urls:
                print("dup:", title, file=sys.stderr)
                continue
            assert re.fullmatch(r"\d{4}(-\d\d-\d\d)?", date), date
            assert len(summary) <= 330, (title, len(summary))
            obj = {
                "title": title,
                "summary": summary,
                "lang": lang,
                "labels": CODES[code],
                "source": source,
                "url": url,
                "date": date,
            }
            if len(entry) > 6 and entry[6] == "slug":
                obj["title_from"] = "url"
            fh.write(json.dumps(obj, ensure_ascii=False) + "\n")
            seen_titles.add(key)
            seen_urls.add(url + "#" + key)
            added += 1
    n = sum(1 for line in out.read_text(encoding="utf-8").splitlines() if line.strip())
    print(f"added {added}, {out.name} now {n}")


main()
