"""The archive as an Atom 1.0 feed (RFC 4287), written with the standard library's ElementTree."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from xml.etree import ElementTree as ET

ATOM_NS = "http://www.w3.org/2005/Atom"


@dataclass(frozen=True, slots=True)
class FeedEntry:
    """One issue as the feed shows it."""

    number: int
    title: str
    updated: datetime
    #: Plain text: the stories' titles, one per line.
    summary: str


def _stamp(value: datetime) -> str:
    if value.tzinfo is None:  # stored as UTC by every writer
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def atom_feed(*, title: str, root_url: str, entries: Sequence[FeedEntry], language: str) -> bytes:
    """The Atom document for ``entries`` (newest first); ``root_url`` has no trailing slash."""
    ET.register_namespace("", ATOM_NS)

    def el(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
        node = ET.SubElement(parent, f"{{{ATOM_NS}}}{tag}", attrs)
        if text is not None:
            node.text = text
        return node

    feed = ET.Element(f"{{{ATOM_NS}}}feed", {"xml:lang": language})
    el(feed, "id", f"{root_url}/feed.xml")
    el(feed, "title", title)
    newest = max((e.updated for e in entries), default=datetime(1970, 1, 1, tzinfo=UTC))
    el(feed, "updated", _stamp(newest))
    el(feed, "link", rel="self", type="application/atom+xml", href=f"{root_url}/feed.xml")
    el(feed, "link", rel="alternate", type="text/html", href=f"{root_url}/")
    el(feed, "generator", "digest")
    author = el(feed, "author")
    el(author, "name", title)
    for entry in entries:
        node = el(feed, "entry")
        url = f"{root_url}/issues/{entry.number}"
        el(node, "id", url)
        el(node, "title", entry.title)
        el(node, "updated", _stamp(entry.updated))
        el(node, "link", rel="alternate", type="text/html", href=url)
        if entry.summary:
            el(node, "summary", entry.summary, type="text")
    body: bytes = ET.tostring(feed, encoding="utf-8", xml_declaration=True)
    return body
