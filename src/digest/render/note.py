"""The editor's note (Markdown from the desk) for the email, the web page and the text part:
sanitized HTML, inline-styled for mail clients, and plain lines."""

from __future__ import annotations

import re

from digest.sanitize import markdown_html

from .templating import INVALID_CHARS

__all__ = ["note_email_html", "note_html", "note_lines"]

#: Inline styles of the note's tags in the email (mail clients drop <style> elements).
_NOTE_STYLES = {
    "p": "margin:0 0 10px;font-size:16px;line-height:1.55;",
    "a": "color:#0b57d0;text-decoration:underline;overflow-wrap:anywhere;",
    "ul": "margin:0 0 10px;padding-left:22px;",
    "ol": "margin:0 0 10px;padding-left:22px;",
    "blockquote": "margin:0 0 10px;padding-left:12px;border-left:3px solid #d0d7de;",
}
_NOTE_TAG = re.compile(r"<(p|a|ul|ol|blockquote)(?=[\s>])")


def note_html(note: str) -> str:
    """The note as sanitized HTML (the web page and the Atom entry)."""
    # Braces spelled as entities: a note can never write a personal placeholder.
    return markdown_html(INVALID_CHARS.sub("", note)).replace("{", "&#123;")


def note_email_html(note: str) -> str:
    """The editor's Markdown note as sanitized HTML with inline styles (for the email)."""
    return _NOTE_TAG.sub(
        lambda m: f'<{m.group(1)} style="{_NOTE_STYLES[m.group(1)]}"', note_html(note)
    )


def note_lines(text: str) -> list[str]:
    """The note for the text part: its Markdown source line by line (lists stay lists), one
    blank line between paragraphs, control characters out."""
    lines: list[str] = []
    for raw in INVALID_CHARS.sub("", text).strip().splitlines():
        line = raw.rstrip()
        if line or (lines and lines[-1]):
            lines.append(line)
    return lines
