"""Jinja2 for the email and the page: the templates (shipped, or an operator's folder first),
escaping that keeps feed text from ever spelling a placeholder or a script, the filters, and the
fall-back when an operator's template breaks."""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import textwrap
from collections.abc import Callable
from functools import cache, lru_cache
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import jinja2
from markupsafe import Markup, escape

from digest.errors import RenderError

log = logging.getLogger(__name__)

_URL_SAFE = "/:@!$&'()*+,;=?%~"
_DOUBLE_BRACE = re.compile(r"\{(?=\{)")
# Not allowed in XML 1.0 (the MJML parser refuses the whole issue) nor sensible in mail.
INVALID_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_JS_SCHEME = re.compile(r"(javascript):", re.IGNORECASE)
_SCRIPT_TAG = re.compile(r"<(?=script)", re.IGNORECASE)
_BLANK_LINES = re.compile(r"\n\s*\n")
SPACES = re.compile(r"\s+")


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
    text = INVALID_CHARS.sub("", str(escape(value))).replace("{", "&#123;")
    return Markup(_JS_SCHEME.sub(r"\1&#58;", text))


def _text_finalize(value: Any) -> Any:
    if isinstance(value, Markup):
        return str(value)
    # Zero-width spaces: no placeholder, "<script" or "javascript:" survives from content.
    text = _DOUBLE_BRACE.sub("{\u200b", INVALID_CHARS.sub("", str(value)))
    return _SCRIPT_TAG.sub("<\u200b", _JS_SCHEME.sub("\\1\u200b:", text))


def _wrap(text: str, indent: str = "", first: str | None = None, width: int = 72) -> str:
    """Fill ``text`` to ``width`` columns; URLs and long words are never broken."""
    return textwrap.fill(
        SPACES.sub(" ", text).strip(),
        width=width,
        initial_indent=indent if first is None else first,
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    )


def _paragraphs(text: str) -> list[str]:
    return [p for p in (SPACES.sub(" ", b).strip() for b in _BLANK_LINES.split(text)) if p]


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
def jinja_env(html: bool, override: str | None = None) -> jinja2.Environment:
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


def render_template(name: str, templates: str | None = None, /, **context: Any) -> str:
    """Render ``name``, the operator's version first; a broken override never stops a send:
    it is logged once (file and line) and the shipped template is used instead."""
    html = not name.endswith(".txt.j2")
    if templates is not None:
        try:
            return jinja_env(html, templates).get_template(name).render(**context)
        except Exception as exc:  # any fault in an operator's template, not only TemplateError
            fallback_warning(name, templates, exc)
    try:
        return jinja_env(html).get_template(name).render(**context)
    except jinja2.TemplateError as exc:
        raise RenderError(f"template {name}: {exc}") from exc


def fallback_warning(name: str, templates: str, exc: BaseException) -> None:
    problem = template_error(exc, templates)
    if (name, problem) not in _warned:
        _warned.add((name, problem))
        log.warning(
            "template override in %s is broken, using the shipped %s: %s", templates, name, problem
        )


#: page.css per templates folder, with Jinja's check that its file has not changed since.
_PAGE_CSS: dict[str | None, tuple[str, Callable[[], bool] | None]] = {}


def page_css(templates: str | None = None) -> str:
    """The issue page's stylesheet (the operator's override first): read once, and again only
    when its file changes (Jinja's up-to-date check: a stat, not a read, per archive page)."""
    known = _PAGE_CSS.get(templates)
    if known is not None and (known[1] is None or known[1]()):
        return known[0]
    env = jinja_env(True, templates)
    assert env.loader is not None
    source, _, fresh = env.loader.get_source(env, "page.css")
    _PAGE_CSS[templates] = (source.strip(), fresh)
    return source.strip()


def page_style_csp_source(templates: str | None = None) -> str:
    """The CSP source (``'sha256-...'``) allowing the issue page's one inline style element."""
    return _csp_hash(page_css(templates))


@lru_cache(maxsize=16)
def _csp_hash(css: str) -> str:
    digest = hashlib.sha256(css.encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode('ascii')}'"
