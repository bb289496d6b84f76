"""OPML in and out: read feed outlines (no DTD, no entities), write OPML 2.0, and append
imported feeds to the config file as ``[[feeds]]`` text, leaving the rest of the file untouched.
"""

from __future__ import annotations

import os
import re
import tempfile
import tomllib
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.parsers import expat

from digest.errors import UsageError
from digest.models import FeedSpec

#: An OPML file bigger than this is not a subscription list.
MAX_BYTES = 20 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Outline:
    """One feed found in an OPML file."""

    url: str
    title: str | None = None
    #: Titles of the folders it sits in, outermost first, then its own ``category`` attribute.
    categories: tuple[str, ...] = ()


class _Refused(Exception):
    pass


def parse_opml(data: bytes, *, source: str = "<opml>") -> list[Outline]:
    """Feeds (outlines with an ``xmlUrl``) in document order; duplicates dropped.

    Expat is driven directly so a DOCTYPE with entity declarations (billion laughs, external
    entities) is refused outright instead of expanded, as defusedxml does.
    """
    if len(data) > MAX_BYTES:
        raise UsageError(f"{source}: larger than {MAX_BYTES // (1024 * 1024)} MB, not an OPML file")
    parser = expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    found: list[Outline] = []
    seen: set[str] = set()
    folders: list[str | None] = []
    root: list[str] = []

    def refuse(*_args: Any) -> None:
        raise _Refused("entity declarations are not allowed")

    def start(name: str, attrs: dict[str, str]) -> None:
        if not root:
            root.append(name)
        if name != "outline":
            return
        url = (attrs.get("xmlUrl") or attrs.get("xmlurl") or "").strip()
        title = (attrs.get("title") or attrs.get("text") or "").strip() or None
        if url:
            if url not in seen:
                seen.add(url)
                crumbs = [f for f in folders if f]
                crumbs += _category_names(attrs.get("category") or "")
                found.append(Outline(url=url, title=title, categories=tuple(dict.fromkeys(crumbs))))
            folders.append(None)
        else:
            folders.append(title)

    def end(name: str) -> None:
        if name == "outline" and folders:
            folders.pop()

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.EntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse  # type: ignore[assignment]
    try:
        parser.Parse(data, True)
    except _Refused as exc:
        raise UsageError(f"{source}: {exc}") from None
    except expat.ExpatError as exc:
        raise UsageError(f"{source}: not valid XML: {exc}") from None
    if root != ["opml"]:
        raise UsageError(f"{source}: not an OPML file (root element is <{root[0]}>)")
    return found


def _category_names(value: str) -> list[str]:
    """OPML 2.0 ``category``: comma-separated, slash-delimited paths ("/Tech/Cloud,News")."""
    return [part.strip() for path in value.split(",") for part in path.split("/") if part.strip()]


def sort_categories(
    categories: Iterable[str], topics: Mapping[str, str]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(topic ids, labels): a folder or category naming a topic (its id or title, any case)
    is offered as the feed's topic; any other is kept as a label."""
    ids: list[str] = []
    labels: list[str] = []
    for name in categories:
        topic = topics.get(name.strip().casefold())
        if topic is not None:
            ids.append(topic)
        else:
            labels.append(name.strip()[:200])
    return tuple(dict.fromkeys(ids)), tuple(dict.fromkeys(labels))


def read_opml(path: Path) -> list[Outline]:
    """``parse_opml`` on a file; a missing or unreadable file is a UsageError naming it."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror}") from None
    return parse_opml(data, source=str(path))


#: Characters XML 1.0 cannot carry at all (ElementTree would write them, parsers refuse them).
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_text(value: str) -> str:
    return _NOT_XML.sub("", value)


def to_opml(
    feeds: Sequence[FeedSpec],
    *,
    title: str = "digest feeds",
    moved: Mapping[str, str] | None = None,
) -> bytes:
    """OPML 2.0 listing ``feeds`` (``text``/``title`` = name, ``xmlUrl`` = URL, ``category`` =
    labels and topics). ``moved``: configured URL -> the address it moved to for good (301/308),
    exported instead, so the reader that imports the list does not start from the old one."""
    moved = moved or {}
    root = ET.Element("opml", version="2.0")
    head = ET.SubElement(root, "head")
    ET.SubElement(head, "title").text = _xml_text(title)
    ET.SubElement(head, "dateCreated").text = datetime.now(UTC).strftime(
        "%a, %d %b %Y %H:%M:%S +0000"
    )
    body = ET.SubElement(root, "body")
    for feed in feeds:
        label = _xml_text(feed.name or feed.url)
        url = _xml_text(moved.get(feed.url, feed.url))
        attrs = {"type": "rss", "text": label, "title": label, "xmlUrl": url}
        categories = [c.replace(",", " ").replace("/", " ") for c in (*feed.labels, *feed.topics)]
        if categories:
            attrs["category"] = _xml_text(",".join(dict.fromkeys(categories)))
        ET.SubElement(body, "outline", attrs)
    ET.indent(root)
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return data + b"\n"


# --------------------------------------------------------------------------- config text


def _toml_string(value: str) -> str:
    out = ['"']
    for ch in value:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def feeds_toml(
    outlines: Iterable[Outline], *, note: str, topics: Mapping[str, str] | None = None
) -> str:
    """``[[feeds]]`` tables for ``outlines``, preceded by a comment line ``note``; folders and
    categories become ``topics`` (those naming a topic in ``topics``: id or title, casefolded ->
    id) or ``labels``."""
    # A file name may hold a newline: a comment must stay on its one line.
    lines = ["# " + "".join(ch if ch.isprintable() else " " for ch in note)]
    for o in outlines:
        lines += ["", "[[feeds]]", f"url = {_toml_string(o.url)}"]
        if o.title:
            lines.append(f"name = {_toml_string(o.title)}")
        ids, labels = sort_categories(o.categories, topics or {})
        if ids:
            lines.append(f"topics = [{', '.join(map(_toml_string, ids))}]")
        if labels:
            lines.append(f"labels = [{', '.join(map(_toml_string, labels))}]")
    return "\n".join(lines) + "\n"


def feeds_file(config_file: Path) -> Path:
    """The file whose ``[[feeds]]`` count: the config itself, or the included file holding them.

    An included file's feeds are replaced (not extended) by any ``[[feeds]]`` in the including
    file, so appending must go where the feeds already are.
    """
    data = _toml(config_file)
    if "feeds" in data:
        return config_file
    includes = data.get("include", [])
    if isinstance(includes, list):
        for name in includes:
            if isinstance(name, str) and "feeds" in _toml(config_file.parent / name):
                return config_file.parent / name
    return config_file


def _toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"{path}: cannot read as TOML: {exc}") from None


def append_text(path: Path, addition: str) -> None:
    """Append ``addition`` to ``path`` atomically (temp file + rename, mode kept)."""
    text = path.read_text(encoding="utf-8")
    if text and not text.endswith("\n"):
        text += "\n"
    new = text + ("\n" if text else "") + addition
    tomllib.loads(new)  # what we write must still be TOML; a bug here must not break the file
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(new)
        os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def same_feed(a: str, b: str) -> bool:
    """Two URLs name the same feed when they differ only in scheme/host case or a final slash."""
    return _key(a) == _key(b)


def _key(url: str) -> str:
    scheme, sep, rest = url.strip().partition("://")
    if not sep:
        return url.strip().rstrip("/")
    host, slash, path = rest.partition("/")
    return f"{scheme.lower()}://{host.lower()}{slash}{path}".rstrip("/")
