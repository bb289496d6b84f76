"""Feed HTML -> safe HTML (nh3 allow-list, absolute links) and plain text; an editor's Markdown
note -> safe HTML. Nothing that leaves here contains ``<script`` or a ``javascript:`` URL.
"""

from __future__ import annotations

import contextvars
import html
import re
from functools import lru_cache
from urllib.parse import urljoin, urlsplit

import nh3

__all__ = ["defang_identifier", "markdown_html", "plain_text", "resolve_url", "sanitize_html"]

_ALLOWED_TAGS = {
    "a", "abbr", "acronym", "address", "article", "aside", "b", "bdi", "bdo", "big",
    "blockquote", "br", "caption", "center", "cite", "code", "col", "colgroup", "dd", "del",
    "details", "dfn", "div", "dl", "dt", "em", "figcaption", "figure", "footer", "h1", "h2",
    "h3", "h4", "h5", "h6", "header", "hgroup", "hr", "i", "img", "ins", "kbd", "li", "main",
    "mark", "nav", "ol", "p", "pre", "q", "rp", "rt", "ruby", "s", "samp", "section", "small",
    "span", "strike", "strong", "sub", "summary", "sup", "table", "tbody", "td", "tfoot", "th",
    "thead", "time", "tr", "tt", "u", "ul", "var", "wbr",
}  # fmt: skip
_ALLOWED_ATTRIBUTES = {
    "*": {"title", "lang", "dir"},
    "a": {"href", "hreflang"},
    "img": {"src", "alt", "width", "height"},
    "blockquote": {"cite"},
    "q": {"cite"},
    "del": {"cite", "datetime"},
    "ins": {"cite", "datetime"},
    "time": {"datetime"},
    "ol": {"start", "reversed"},
    "li": {"value"},
    "td": {"colspan", "rowspan", "headers"},
    "th": {"colspan", "rowspan", "headers", "scope"},
    "col": {"span"},
    "colgroup": {"span"},
}
#: Removed with their content, not merely unwrapped.
_DROPPED_WITH_CONTENT = {"script", "style", "iframe", "object", "embed", "form", "noscript"}
_URL_ATTRIBUTES = {"href", "src", "cite"}
_SAFE_SCHEMES = {"http", "https", "mailto"}

#: The base URL the attribute filter resolves relative links against (one per entry).
_BASE: contextvars.ContextVar[str] = contextvars.ContextVar("digest_parse_base", default="")

_CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_TAG = re.compile(r"<[a-zA-Z/!?][^>]*>")
_SCRIPT = re.compile(r"<(?=\s*/?\s*script)", re.IGNORECASE)
_JS_SCHEME = re.compile(r"javascript(\s*):", re.IGNORECASE)


def _resolve(tag: str, attribute: str, value: str) -> str | None:
    """nh3 attribute filter: make URL attributes absolute and keep only safe schemes."""
    if attribute not in _URL_ATTRIBUTES:
        return value
    return resolve_url(_BASE.get(), value)


# Feeds repeat links (the article's own, share and tracking links, one per paragraph): urljoin
# and urlsplit were a tenth of a feed's parse time.
@lru_cache(maxsize=4096)
def resolve_url(base: str, value: str) -> str | None:
    value = value.strip()
    try:
        absolute = urljoin(base, value) if base else value
        scheme = urlsplit(absolute).scheme.lower()
    except ValueError:
        return None
    if scheme in _SAFE_SCHEMES:
        return absolute
    # Still relative (no base known): harmless, and better than losing the link.
    return absolute if not scheme and not absolute.startswith("//") else None


_CLEANER = nh3.Cleaner(
    tags=_ALLOWED_TAGS,
    clean_content_tags=_DROPPED_WITH_CONTENT,
    attributes=_ALLOWED_ATTRIBUTES,
    attribute_filter=_resolve,
    url_schemes=_SAFE_SCHEMES,
    strip_comments=True,
    link_rel="noopener noreferrer",
)


def sanitize_html(fragment: str, base_url: str = "") -> str:
    """Allow-listed HTML with absolute links; never contains ``<script`` or ``javascript:``."""
    if not fragment or not fragment.strip():
        return ""
    token = _BASE.set(base_url)
    try:
        cleaned = _CLEANER.clean(fragment)
    finally:
        _BASE.reset(token)
    # The words may still mention "javascript:" as text; an entity keeps the reading, not the risk.
    return _JS_SCHEME.sub(r"javascript\1&#58;", cleaned).strip()


def plain_text(fragment: str) -> str:
    """Text of an HTML or text fragment: tags stripped, entities decoded, whitespace collapsed."""
    text = fragment
    for _ in range(3):  # double-escaped markup ("&amp;lt;b&amp;gt;") takes more than one pass
        stripped = html.unescape(_TAG.sub(" ", _drop_dangerous_blocks(text)))
        if stripped == text:
            break
        text = stripped
    text = _TAG.sub(" ", text)
    text = _SCRIPT.sub("‹", text)
    text = _JS_SCHEME.sub(r"javascript\1 :", text)
    # "&#0;" and other controls decode to characters no column (and no reader) wants.
    return " ".join(_CONTROLS.sub(" ", text).split())


def _drop_dangerous_blocks(text: str) -> str:
    if "<" not in text:
        return text
    return re.sub(r"<(script|style)\b[^>]*>.*?</\1\s*>", " ", text, flags=re.IGNORECASE | re.DOTALL)


def defang_identifier(text: str) -> str:
    """Identifiers and URLs come out percent-escaped where they would look like script."""
    text = _JS_SCHEME.sub(lambda m: "javascript" + m.group(1) + "%3A", text)
    return text.replace("<", "%3C")


# --------------------------------------------------------------------------- editor's note

#: What a few lines of introduction need: paragraphs, emphasis, links, lists, quotes, code.
_NOTE_TAGS = {"p", "br", "em", "strong", "a", "ul", "ol", "li", "blockquote", "code"}
_NOTE_CLEANER = nh3.Cleaner(
    tags=_NOTE_TAGS,
    attributes={"a": {"href"}},
    url_schemes={"http", "https", "mailto"},
    strip_comments=True,
    link_rel="noopener noreferrer",
)


@lru_cache(maxsize=1)
def _markdown() -> object:
    from markdown_it import MarkdownIt

    # CommonMark with raw HTML off: "<script>" in a note is text; nh3 then has the last word.
    return MarkdownIt("commonmark", {"html": False}).disable(["heading", "table"])


def markdown_html(text: str) -> str:
    """An editor's Markdown as safe HTML (paragraphs, emphasis, links, lists); "" when empty."""
    if not text or not text.strip():
        return ""
    md = _markdown()
    rendered: str = md.render(text)  # type: ignore[attr-defined]
    return _JS_SCHEME.sub(r"javascript\1&#58;", _NOTE_CLEANER.clean(rendered)).strip()
