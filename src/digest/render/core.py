"""Issue content -> email HTML (Jinja2 -> MJML -> mjml2html), plain text, web page and subject.

Personal bits are left as placeholders (see ``personal``) so one compile serves many readers.
"""

from __future__ import annotations

import base64
import hashlib
import re
import string
import textwrap
from collections.abc import Sequence
from functools import cache
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import jinja2
from markupsafe import Markup, escape
from mjml import mjml2html

from digest.errors import RenderError
from digest.models import IssueContent, IssueEntry, IssueSection, RenderedIssue
from digest.sanitize import markdown_html

from .i18n import Words, words

__all__ = [
    "PLACEHOLDERS",
    "format_subject",
    "lead_entry",
    "note_email_html",
    "page_style_csp_source",
    "render_issue",
    "render_page",
    "safe_http_url",
    "select_sections",
]

#: The personal placeholders as they stand in a RenderedIssue. Braces in content are escaped
#: (``&#123;`` in HTML; a zero-width space splits "{{" in text), so these never come from a feed.
PLACEHOLDERS = {
    "greeting": "{{{greeting}}}",
    "unsubscribe_url": "{{{unsubscribe_url}}}",
    "preferences_url": "{{{preferences_url}}}",
    # The preferences link is optional: personalize drops everything between these two.
    "preferences_open": "{{{#preferences_url}}}",
    "preferences_close": "{{{/preferences_url}}}",
}

_URL_SAFE = "/:@!$&'()*+,;=?%~"
_DOUBLE_BRACE = re.compile(r"\{(?=\{)")
# Not allowed in XML 1.0 (the MJML parser refuses the whole issue) nor sensible in mail.
_INVALID_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_JS_SCHEME = re.compile(r"(javascript):", re.IGNORECASE)
_SCRIPT_TAG = re.compile(r"<(?=script)", re.IGNORECASE)
_BLANK_LINES = re.compile(r"\n\s*\n")
_SPACES = re.compile(r"\s+")
_SUBJECT_FIELDS = frozenset({"title", "number", "date", "lead"})
#: Widths and precisions in a subject's format spec stay small (the config refuses more too):
#: ``{number:>999999999}`` would build a gigabyte string per message.
_MAX_SPEC_NUMBER = 100
_DIGITS = re.compile(r"\d+")


def safe_http_url(url: str) -> str | None:
    """The URL fit for an href (absolute http/https, percent-encoded), or None if it is not one.

    Feeds carry anything (javascript:, data:, relative paths): only web links become links.
    """
    try:
        parts = urlsplit(url.strip())
        scheme = parts.scheme.lower()
        host = parts.hostname
        port = parts.port
    except ValueError:
        return None
    if scheme not in ("http", "https") or not host:
        return None
    try:
        host = host.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = host if port is None else f"{host}:{port}"
    url = urlunsplit(
        (
            scheme,
            netloc,
            quote(parts.path, safe=_URL_SAFE) or "/",
            quote(parts.query, safe=_URL_SAFE),
            quote(parts.fragment, safe=_URL_SAFE),
        )
    )
    # Same meaning for the server; keeps the rendered issue free of the string "javascript:".
    return _JS_SCHEME.sub(r"\1%3A", url)


# --------------------------------------------------------------------------- Jinja setup


def _html_finalize(value: Any) -> Any:
    # Markup is ours (placeholders, macros); everything else is content: escape it and turn
    # "{" into an entity so no feed text can ever spell a placeholder.
    if isinstance(value, Markup):
        return value
    # "javascript:" in prose (an article about it) is spelled with an entity, so the compiled
    # issue never holds that string at all, which keeps a plain grep a valid safety check.
    text = _INVALID_CHARS.sub("", str(escape(value))).replace("{", "&#123;")
    return Markup(_JS_SCHEME.sub(r"\1&#58;", text))


def _text_finalize(value: Any) -> Any:
    if isinstance(value, Markup):
        return str(value)
    # Zero-width spaces: no placeholder, "<script" or "javascript:" survives from content.
    text = _DOUBLE_BRACE.sub("{\u200b", _INVALID_CHARS.sub("", str(value)))
    return _SCRIPT_TAG.sub("<\u200b", _JS_SCHEME.sub("\\1\u200b:", text))


def _wrap(text: str, indent: str = "", first: str | None = None, width: int = 72) -> str:
    """Fill ``text`` to ``width`` columns; URLs and long words are never broken."""
    return textwrap.fill(
        _SPACES.sub(" ", text).strip(),
        width=width,
        initial_indent=indent if first is None else first,
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    )


def _paragraphs(text: str) -> list[str]:
    return [p for p in (_SPACES.sub(" ", b).strip() for b in _BLANK_LINES.split(text)) if p]


def _underline(text: str, char: str = "=") -> str:
    return char * min(len(text), 72)


@cache
def _env(html: bool) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("digest", "templates"),
        autoescape=html,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        finalize=_html_finalize if html else _text_finalize,
    )
    env.filters.update(href=safe_http_url, wrap=_wrap, paragraphs=_paragraphs, underline=_underline)
    return env


def _render_template(name: str, **context: Any) -> str:
    html = not name.endswith(".txt.j2")
    try:
        return _env(html).get_template(name).render(**context)
    except jinja2.TemplateError as exc:
        raise RenderError(f"template {name}: {exc}") from exc


@cache
def _page_css() -> str:
    loader = _env(True).loader
    assert loader is not None
    source, _, _ = loader.get_source(_env(True), "page.css")
    return source.strip()


def page_style_csp_source() -> str:
    """The CSP source (``'sha256-...'``) allowing the issue page's one inline style element."""
    digest = hashlib.sha256(_page_css().encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode('ascii')}'"


# --------------------------------------------------------------------------- content


def select_sections(
    content: IssueContent, topics: Sequence[str] | None
) -> tuple[IssueSection, ...]:
    """The non-empty sections a reader of ``topics`` gets, in the issue's order (None: all)."""
    if isinstance(topics, str):  # one topic id, not its letters
        topics = (topics,)
    wanted = None if topics is None else frozenset(topics)
    return tuple(
        s for s in content.sections if s.entries and (wanted is None or s.topic_id in wanted)
    )


def _section_title(section: IssueSection, language: str) -> str:
    for lang, title in section.titles:
        if lang == language:
            return title
    return section.title


def lead_entry(
    content: IssueContent, sections: Sequence[IssueSection] | None = None
) -> IssueEntry | None:
    """The pinned story when the reader gets it, else the first story; None for no entries."""
    chosen = content.sections if sections is None else sections
    entries = [e for s in chosen for e in s.entries]
    if content.lead_item_id is not None:
        for e in entries:
            if e.item_id == content.lead_item_id:
                return e
    return entries[0] if entries else None


#: Inline styles of the note's tags in the email (mail clients drop <style> elements).
_NOTE_STYLES = {
    "p": "margin:0 0 10px;font-size:16px;line-height:1.55;",
    "a": "color:#0b57d0;text-decoration:underline;overflow-wrap:anywhere;",
    "ul": "margin:0 0 10px;padding-left:22px;",
    "ol": "margin:0 0 10px;padding-left:22px;",
    "blockquote": "margin:0 0 10px;padding-left:12px;border-left:3px solid #d0d7de;",
}
_NOTE_TAG = re.compile(r"<(p|a|ul|ol|blockquote)(?=[\s>])")


def note_email_html(note: str) -> str:
    """The editor's Markdown note as sanitized HTML with inline styles (for the email)."""
    return _NOTE_TAG.sub(lambda m: f'<{m.group(1)} style="{_NOTE_STYLES[m.group(1)]}"', _note(note))


def _note(note: str) -> str:
    # Braces spelled as entities: a note can never write a personal placeholder.
    return markdown_html(_INVALID_CHARS.sub("", note)).replace("{", "&#123;")


def _context(content: IssueContent, sections: tuple[IssueSection, ...], w: Words) -> dict[str, Any]:
    count = sum(len(s.entries) for s in sections)
    lead = lead_entry(content, sections) if content.lead_item_id is not None else None
    base = safe_http_url(content.base_url) if content.base_url else None
    return {
        "content": content,
        "lang": w.language,
        "w": w,
        "sections": [(s, _section_title(s, w.language)) for s in sections],
        "count": count,
        "articles": w.plural("articles", count),
        "period": w.period(content.period_start, content.period_end),
        "issue_label": w("issue", number=content.number),
        "issue_url": f"{base.rstrip('/')}/issues/{content.number}" if base else None,
        "archive_url": f"{base.rstrip('/')}/" if base else None,
        "ph": {k: Markup(v) for k, v in PLACEHOLDERS.items()},
        # Only a pinned story gets the lead's treatment (the first story otherwise stays plain).
        "lead_id": lead.item_id if lead is not None else None,
        "note_html": Markup(_note(content.note)) if content.note.strip() else None,
        "note_email": Markup(note_email_html(content.note)) if content.note.strip() else None,
        "note_lines": _note_lines(content.note),
    }


def _note_lines(text: str) -> list[str]:
    """The note for the text part: its Markdown source line by line (lists stay lists), one
    blank line between paragraphs, control characters out."""
    lines: list[str] = []
    for raw in _INVALID_CHARS.sub("", text).strip().splitlines():
        line = raw.rstrip()
        if line or (lines and lines[-1]):
            lines.append(line)
    return lines


def format_subject(
    fmt: str,
    content: IssueContent,
    language: str | None = None,
    sections: Sequence[IssueSection] | None = None,
) -> str:
    """``fmt`` with {title}, {number}, {date} (the issue's date, long form, in its language) and
    {lead} (the lead story's title: the pinned one, else the first of ``sections``)."""
    try:
        parsed = [(f, spec, conv) for _, f, spec, conv in string.Formatter().parse(fmt) if f]
    except ValueError as exc:
        raise RenderError(f"subject format {fmt!r}: {exc}") from exc
    # A nested field in a format spec ("{number:{title.__class__}}") or a conversion would
    # reach past the three plain values; the config refuses them too.
    if any(conv or "{" in (spec or "") for _, spec, conv in parsed):
        raise RenderError(f"subject format {fmt!r}: only plain fields and format specs")
    if any(int(n) > _MAX_SPEC_NUMBER for _, spec, _ in parsed for n in _DIGITS.findall(spec or "")):
        raise RenderError(f"subject format {fmt!r}: a width or precision over {_MAX_SPEC_NUMBER}")
    fields = [f for f, _, _ in parsed]
    unknown = [f for f in fields if f not in _SUBJECT_FIELDS]
    if unknown:
        raise RenderError(
            f"subject format {fmt!r}: unknown field {{{unknown[0]}}} "
            "(use {title}, {number}, {date}, {lead})"
        )
    w = words(language or content.language, content.timezone)
    lead = lead_entry(content, sections) if "lead" in fields else None
    subject = fmt.format(
        title=content.title,
        number=content.number,
        date=w.date(content.created, "long"),
        lead=lead.title if lead is not None else "",
    )
    # A header value: no line breaks whatever the title holds.
    return _SPACES.sub(" ", _INVALID_CHARS.sub("", subject)).strip()


def render_issue(
    content: IssueContent,
    *,
    subject_format: str = "{title} #{number} — {date}",
    language: str | None = None,
    topics: Sequence[str] | None = None,
    mark_machine_written: bool = True,
) -> RenderedIssue:
    """Compile the issue (or a reader's topic subset) once, with personal placeholders left in.

    Raises RenderError when the subset has no entries: nobody gets an empty issue.
    """
    w = words(language or content.language, content.timezone)
    sections = select_sections(content, topics)
    if not sections:
        wanted = "all topics" if topics is None else f"topics {', '.join(topics) or '(none)'}"
        raise RenderError(f"issue #{content.number} has no entries for {wanted}")
    subject = format_subject(subject_format, content, w.language, sections)
    ctx = _context(content, sections, w)
    ctx.update(subject=subject, machine_mark=mark_machine_written)
    mjml = _render_template("digest.mjml.j2", **ctx)
    try:
        html = mjml2html(mjml, disable_comments=True, fonts={})
    except ValueError as exc:
        raise RenderError(f"MJML compile of issue #{content.number}: {exc}") from exc
    text = _render_template("digest.txt.j2", **ctx)
    return RenderedIssue(
        subject=subject,
        html=html,
        text=text,
        language=w.language,
        topics=tuple(s.topic_id for s in sections),
    )


def render_page(content: IssueContent, *, language: str | None = None) -> str:
    """The whole issue as a standalone web page (archive, outbox index.html): nothing personal."""
    w = words(language or content.language, content.timezone)
    ctx = _context(content, select_sections(content, None), w)
    ctx.update(
        machine_mark=True,
        page_title=f"{content.title} — {ctx['issue_label']}",
        css=Markup(_page_css()),
    )
    return _render_template("page.html.j2", **ctx)
