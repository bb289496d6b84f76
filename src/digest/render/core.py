"""Issue content -> email HTML (Jinja2 -> MJML -> mjml2html), plain text, web page and subject.

Personal bits are left as placeholders (see ``personal``) so one compile serves many readers.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import logging
import re
import string
import textwrap
from collections.abc import Sequence
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import jinja2
from markupsafe import Markup, escape
from mjml import mjml2html

from digest.errors import RenderError
from digest.models import Brand, IssueContent, IssueEntry, IssueSection, RenderedIssue

from .i18n import Words, words

log = logging.getLogger(__name__)

__all__ = [
    "HTML_BUDGET",
    "PLACEHOLDERS",
    "TEMPLATE_NAMES",
    "check_templates",
    "format_subject",
    "lead_entry",
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

_URL_SAFE = "/:@!$&'()*+,;=?%~"
_DOUBLE_BRACE = re.compile(r"\{(?=\{)")
# Not allowed in XML 1.0 (the MJML parser refuses the whole issue) nor sensible in mail.
_INVALID_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_JS_SCHEME = re.compile(r"(javascript):", re.IGNORECASE)
_SCRIPT_TAG = re.compile(r"<(?=script)", re.IGNORECASE)
_BLANK_LINES = re.compile(r"\n\s*\n")
_SPACES = re.compile(r"\s+")
_SUBJECT_FIELDS = frozenset({"title", "number", "date", "lead"})


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


#: A checkout's templates (the package holds them only once built into a wheel).
_REPO_TEMPLATES = Path(__file__).resolve().parents[3] / "templates"
#: The templates an operator may override, each looked up in ``[render] templates`` first.
TEMPLATE_NAMES = ("digest.mjml.j2", "digest.txt.j2", "_blocks.html.j2", "page.html.j2", "page.css")


@cache
def _shipped_loader() -> jinja2.BaseLoader:
    """The templates shipped in the wheel (hatch force-include), with the package loader; in a
    source checkout (editable install), the repository's top-level ``templates/``."""
    if resources.files("digest").joinpath("templates").is_dir():
        return jinja2.PackageLoader("digest", "templates")
    return jinja2.FileSystemLoader(_REPO_TEMPLATES)


@cache
def _env(html: bool, override: str | None = None) -> jinja2.Environment:
    loader = _shipped_loader()
    if override is not None:
        # The operator's folder first, the shipped templates for whatever it does not hold.
        loader = jinja2.ChoiceLoader([jinja2.FileSystemLoader(override), loader])
    env = jinja2.Environment(
        loader=loader,
        autoescape=html,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        finalize=_html_finalize if html else _text_finalize,
    )
    env.filters.update(href=safe_http_url, wrap=_wrap, paragraphs=_paragraphs, underline=_underline)
    return env


def template_error(exc: BaseException, override: str | None) -> str:
    """``file:line: message`` for a template failure, pointing into the operator's folder when
    the fault is there (syntax errors carry it; runtime errors are found in the traceback)."""
    if isinstance(exc, jinja2.TemplateSyntaxError):
        return f"{exc.filename or exc.name or '?'}:{exc.lineno}: {exc.message}"
    found: tuple[str, int] | None = None
    tb = exc.__traceback__
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if name.endswith((".j2", ".css")) and (override is None or name.startswith(override)):
            found = (name, tb.tb_lineno)
        tb = tb.tb_next
    if found is None:
        return f"{type(exc).__name__}: {exc}"
    return f"{found[0]}:{found[1]}: {exc}"


_warned: set[tuple[str, str]] = set()


def _render_template(name: str, templates: str | None = None, /, **context: Any) -> str:
    """Render ``name``, the operator's version first; a broken override never stops a send:
    it is logged once (file and line) and the shipped template is used instead."""
    html = not name.endswith(".txt.j2")
    if templates is not None:
        try:
            return _env(html, templates).get_template(name).render(**context)
        except Exception as exc:  # any fault in an operator's template, not only TemplateError
            _fallback_warning(name, templates, exc)
    try:
        return _env(html).get_template(name).render(**context)
    except jinja2.TemplateError as exc:
        raise RenderError(f"template {name}: {exc}") from exc


def _fallback_warning(name: str, templates: str, exc: BaseException) -> None:
    problem = template_error(exc, templates)
    if (name, problem) not in _warned:
        _warned.add((name, problem))
        log.warning(
            "template override in %s is broken, using the shipped %s: %s", templates, name, problem
        )


def _page_css(templates: str | None = None) -> str:
    loader = _env(True, templates).loader
    assert loader is not None
    source, _, _ = loader.get_source(_env(True, templates), "page.css")
    return source.strip()


def page_style_csp_source(templates: str | None = None) -> str:
    """The CSP source (``'sha256-...'``) allowing the issue page's one inline style element."""
    digest = hashlib.sha256(_page_css(templates).encode("utf-8")).digest()
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
    flat = _SPACES.sub(" ", _INVALID_CHARS.sub("", text)).strip()
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
    mjml = _render_template("digest.mjml.j2", templates, **ctx)
    try:
        html = mjml2html(mjml, disable_comments=True, fonts={})
    except ValueError as exc:
        if templates is None:
            raise RenderError(f"MJML compile of issue #{content.number}: {exc}") from exc
        # The operator's template made MJML the compiler refuses: the shipped one instead.
        _fallback_warning("digest.mjml.j2", templates, exc)
        return _compile(content, {**ctx, "templates": None})
    html = html.replace("<title>", _COLOR_SCHEME_META + "<title>", 1)
    return html, _render_template("digest.txt.j2", templates, **ctx)


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
        css=Markup(_page_css(templates)),
    )
    return _render_template("page.html.j2", templates, **ctx)


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
                    out = _env(not name.endswith(".txt.j2"), templates).get_template(name)
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
        _page_css(templates)
    except jinja2.TemplateError as exc:
        problems.append(template_error(exc, templates))
    return list(dict.fromkeys(problems))
