"""Issue content -> email HTML (Jinja2 -> MJML -> mjml2html), plain text, web page and subject.

Personal bits are left as placeholders (see ``personal``) so one compile serves many readers.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import string
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jinja2
from markupsafe import Markup
from mjml import mjml2html

from digest.errors import RenderError
from digest.models import Brand, IssueContent, IssueEntry, IssueSection, RenderedIssue

from .i18n import Words, words
from .note import note_email_html, note_html, note_lines
from .templating import (
    INVALID_CHARS,
    SPACES,
    TEMPLATE_NAMES,
    fallback_warning,
    jinja_env,
    page_css,
    page_style_csp_source,
    render_template,
    safe_http_url,
    template_error,
)

log = logging.getLogger(__name__)

__all__ = [
    "HTML_BUDGET",
    "PLACEHOLDERS",
    "TEMPLATE_NAMES",
    "check_templates",
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
    # Who the message was sent to (footer); optional like the preferences link.
    "email": "{{{email}}}",
    "email_open": "{{{#email}}}",
    "email_close": "{{{/email}}}",
}

#: Largest compiled HTML part, in bytes (UTF-8, before base64). Gmail clips a message whose
#: HTML passes ~102 KB, hiding the rest (the footer and its unsubscribe link among it); the
#: margin leaves room for the personal values and the MIME framing of the part.
HTML_BUDGET = 96 * 1024
#: Largest plain-text part: bounded likewise, so no client truncates it either.
TEXT_BUDGET = 96 * 1024
#: Preheader padding: after the lead's sentence, invisible characters fill the inbox preview
#: so clients do not pull the body text in after it (combining grapheme joiner, zero-width
#: non-joiner, no-break space).
PREHEADER_PAD = "\u034f\u200c\u00a0" * 90
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+(?=[A-ZÀ-ÖØ-Þ«\"“(])")
#: Light and dark both supported (Apple Mail, iOS, Outlook.com read these); mjml drops raw
#: elements from its head, so they are put in after compiling.
_COLOR_SCHEME_META = (
    '<meta name="color-scheme" content="light dark">'
    '<meta name="supported-color-schemes" content="light dark">'
)

_SUBJECT_FIELDS = frozenset({"title", "number", "date", "lead"})
#: Widths and precisions in a subject's format spec stay small (the config refuses more too):
#: ``{number:>999999999}`` would build a gigabyte string per message.
_MAX_SPEC_NUMBER = 100
_DIGITS = re.compile(r"\d+")


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
    """The lead story: the one pinned on the editor's desk when this reader gets it, else the
    best-scored (the first of equals); None when there are no entries."""
    chosen = content.sections if sections is None else sections
    entries = [e for s in chosen for e in s.entries]
    if not entries:
        return None
    if content.lead_item_id is not None:
        for e in entries:
            if e.item_id == content.lead_item_id:
                return e
    return max(entries, key=lambda e: e.score)  # max keeps the first of equal scores


def first_sentence(text: str, limit: int = 150) -> str:
    """The first sentence of ``text`` (cut at a word near ``limit`` characters)."""
    flat = SPACES.sub(" ", INVALID_CHARS.sub("", text)).strip()
    sentence = _SENTENCE_END.split(flat, maxsplit=1)[0]
    if len(sentence) <= limit:
        return sentence
    cut = sentence[:limit].rsplit(" ", 1)[0].rstrip(",;:—-")
    return f"{cut}…"


def _domain(url: str) -> str:
    """``https://www.example.com/x`` -> ``example.com`` (shown beside the source's name)."""
    safe = safe_http_url(url)
    host = (urlsplit(safe).hostname or "") if safe else ""
    return host.removeprefix("www.")


def _primary(language: str | None) -> str:
    return (language or "").replace("_", "-").split("-", 1)[0].lower()


def _entry_extras(e: IssueEntry, w: Words) -> dict[str, Any]:
    lang = _primary(e.language)
    other = bool(lang) and lang != w.language and lang.isalpha() and len(lang) <= 3
    return {
        "lang": lang if other else None,
        "marker": lang.upper() if other else None,
        "domain": _domain(e.url),
        "minutes": w("reading_time", n=e.reading_minutes) if e.reading_minutes > 0 else None,
    }


def _anchor(topic_id: str) -> str:
    return "topic-" + re.sub(r"[^a-z0-9_-]", "-", topic_id.lower())


def _context(
    content: IssueContent,
    sections: tuple[IssueSection, ...],
    w: Words,
    brand: Brand | None = None,
) -> dict[str, Any]:
    count = sum(len(s.entries) for s in sections)
    base = safe_http_url(content.base_url) if content.base_url else None
    lead = lead_entry(content, sections)
    brand = brand or Brand()
    preheader = ""
    if lead is not None:
        preheader = first_sentence(lead.summary) if lead.summary.strip() else lead.title
    return {
        "content": content,
        "lang": w.language,
        "w": w,
        "sections": [(s, _section_title(s, w.language)) for s in sections],
        "anchors": {s.topic_id: _anchor(s.topic_id) for s in sections},
        "extras": {e.item_id: _entry_extras(e, w) for s in sections for e in s.entries},
        "count": count,
        "articles": w.plural("articles", count),
        "period": w.period(content.period_start, content.period_end),
        "issue_label": w("issue", number=content.number),
        "issue_url": f"{base.rstrip('/')}/issues/{content.number}" if base else None,
        "archive_url": f"{base.rstrip('/')}/" if base else None,
        "ph": {k: Markup(v) for k, v in PLACEHOLDERS.items()},
        "lead": lead,
        # Only a pinned story gets the "Top story" treatment (the best-scored one otherwise
        # stays in its place, plain: it leads the preheader and the subject only).
        "lead_id": (
            lead.item_id if lead is not None and lead.item_id == content.lead_item_id else None
        ),
        "note_html": Markup(note_html(content.note)) if content.note.strip() else None,
        "note_email": Markup(note_email_html(content.note)) if content.note.strip() else None,
        "note_lines": note_lines(content.note),
        "preheader": preheader,
        "preheader_pad": PREHEADER_PAD,
        "brand": brand,
        "sender_name": brand.name or content.title,
        "accent": brand.accent,
        "logo": safe_http_url(brand.logo_url) if brand.logo_url else None,
        # Filled in by the size budget (render_issue): entries shown as title + source only,
        # and how many entries the email leaves to the online issue.
        "compact": frozenset(),
        "more": 0,
    }


def format_subject(
    fmt: str,
    content: IssueContent,
    language: str | None = None,
    sections: Sequence[IssueSection] | None = None,
) -> str:
    """``fmt`` with {title}, {number}, {date} (the issue's date, long form, in its language) and
    {lead} (the lead story's title: the pinned one, else the best-scored of ``sections``)."""
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
    return SPACES.sub(" ", INVALID_CHARS.sub("", subject)).strip()


def render_issue(
    content: IssueContent,
    *,
    subject_format: str = "{title} #{number} — {date}",
    language: str | None = None,
    topics: Sequence[str] | None = None,
    mark_machine_written: bool = True,
    brand: Brand | None = None,
    templates: str | None = None,
    html_budget: int = HTML_BUDGET,
    text_budget: int = TEXT_BUDGET,
) -> RenderedIssue:
    """Compile the issue (or a reader's topic subset) once, with personal placeholders left in.

    Never clipped: when the full issue would pass ``html_budget`` (or ``text_budget``), the
    later entries become title + source lines and the email ends with "N more articles in the
    online issue" (with ``base_url``); without an online issue they are left out.
    ``templates``: the operator's folder, looked up before the shipped templates.
    Raises RenderError when the subset has no entries: nobody gets an empty issue.
    """
    w = words(language or content.language, content.timezone)
    sections = select_sections(content, topics)
    if not sections:
        wanted = "all topics" if topics is None else f"topics {', '.join(topics) or '(none)'}"
        raise RenderError(f"issue #{content.number} has no entries for {wanted}")
    subject = format_subject(subject_format, content, w.language, sections)
    ctx = _context(content, sections, w, brand)
    ctx.update(subject=subject, machine_mark=mark_machine_written)
    ctx["templates"] = templates
    html, text = _compile(content, ctx)
    if len(html.encode()) <= html_budget and len(text.encode()) <= text_budget:
        return RenderedIssue(subject, html, text, w.language, tuple(s.topic_id for s in sections))
    html, text = _fit(content, sections, ctx, html_budget, text_budget)
    return RenderedIssue(subject, html, text, w.language, tuple(s.topic_id for s in sections))


def _compile(content: IssueContent, ctx: dict[str, Any]) -> tuple[str, str]:
    """(HTML, text) of the issue; ``ctx["templates"]`` names the operator's folder, if any."""
    templates = ctx.get("templates")
    mjml = render_template("digest.mjml.j2", templates, **ctx)
    try:
        html = mjml2html(mjml, disable_comments=True, fonts={})
    except ValueError as exc:
        if templates is None:
            raise RenderError(f"MJML compile of issue #{content.number}: {exc}") from exc
        # The operator's template made MJML the compiler refuses: the shipped one instead.
        fallback_warning("digest.mjml.j2", templates, exc)
        return _compile(content, {**ctx, "templates": None})
    html = html.replace("<title>", _COLOR_SCHEME_META + "<title>", 1)
    return html, render_template("digest.txt.j2", templates, **ctx)


def _fit(
    content: IssueContent,
    sections: tuple[IssueSection, ...],
    ctx: dict[str, Any],
    html_budget: int,
    text_budget: int,
) -> tuple[str, str]:
    """The largest prefix of full entries that fits, the rest compact (with an online issue)
    or left out (without); each step re-measures the compiled parts."""
    order = [e.item_id for s in sections for e in s.entries]
    online = ctx["issue_url"] is not None

    def attempt(full: int, shown: int) -> tuple[str, str, bool]:
        keep = set(order[:shown])
        trimmed = [
            (s, title, tuple(e for e in s.entries if e.item_id in keep))
            for s, title in ctx["sections"]
        ]
        trial = dict(ctx)
        trial["sections"] = [
            (dataclasses.replace(s, entries=entries), title)
            for s, title, entries in trimmed
            if entries
        ]
        trial["compact"] = frozenset(order[full:shown])
        trial["more"] = len(order) - full
        html, text = _compile(content, trial)
        fits = len(html.encode()) <= html_budget and len(text.encode()) <= text_budget
        return html, text, fits

    total = len(order)
    shown = total if online else 0
    if not online:
        # No online issue to send readers to: full entries only, as many as fit.
        lo, hi = 1, total  # at least the first entry, whatever its size
        best = attempt(1, 1)[:2]
        while lo < hi:
            mid = (lo + hi + 1) // 2
            html, text, fits = attempt(mid, mid)
            if fits:
                lo, best = mid, (html, text)
            else:
                hi = mid - 1
        return best
    # With an online issue: every entry stays listed; find how many keep their summary, then
    # if even the title lines do not fit, how many are listed at all.
    html, text, fits = attempt(0, shown)
    while not fits and shown > 1:
        shown = max(1, shown * 3 // 4)
        html, text, fits = attempt(0, shown)
    lo, hi, best = 0, shown, (html, text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        h, t, ok = attempt(mid, shown)
        if ok:
            lo, best = mid, (h, t)
        else:
            hi = mid - 1
    return best


def render_page(
    content: IssueContent,
    *,
    language: str | None = None,
    brand: Brand | None = None,
    templates: str | None = None,
) -> str:
    """The whole issue as a standalone web page (archive, outbox index.html): nothing personal."""
    w = words(language or content.language, content.timezone)
    ctx = _context(content, select_sections(content, None), w, brand)
    ctx.update(
        machine_mark=True,
        page_title=f"{content.title} — {ctx['issue_label']}",
        css=Markup(page_css(templates)),
    )
    return render_template("page.html.j2", templates, **ctx)


def check_templates(templates: str, brand: Brand | None = None) -> list[str]:
    """Render a sample issue (email, text, page; every branch the size budget can take) with
    the operator's folder and no fallback: one ``file:line: problem`` per fault found."""
    from .sample import sample_issue

    problems: list[str] = []
    present = [n for n in TEMPLATE_NAMES if (Path(templates) / n).is_file()]
    if not present:
        return [f"{templates}: holds none of {', '.join(TEMPLATE_NAMES)}"]
    for language in ("en", "fr"):
        for base_url in ("https://example.org", None):
            content = sample_issue(language, base_url)
            w = words(language, content.timezone)
            ctx = _context(content, select_sections(content, None), w, brand)
            ctx.update(
                subject="Sample",
                machine_mark=True,
                page_title="Sample",
                compact=frozenset({2}),
                more=3,
                css=Markup(""),
            )
            for name in ("digest.mjml.j2", "digest.txt.j2", "page.html.j2"):
                try:
                    out = jinja_env(not name.endswith(".txt.j2"), templates).get_template(name)
                    rendered = out.render(**ctx)
                except Exception as exc:  # an operator's template may fail in any way
                    problems.append(template_error(exc, templates))
                    continue
                if name == "digest.mjml.j2":
                    try:
                        mjml2html(rendered, disable_comments=True, fonts={})
                    except ValueError as exc:
                        problems.append(f"{templates}/{name}: MJML does not compile: {exc}")
    try:
        page_css(templates)
    except jinja2.TemplateError as exc:
        problems.append(template_error(exc, templates))
    return list(dict.fromkeys(problems))
