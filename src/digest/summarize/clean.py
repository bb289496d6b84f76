"""Feed HTML or plain text -> clean text: paragraphs kept, entities decoded, mojibake fixed,
whitespace normalized, and boilerplate lines (share, read more, source, credits...) dropped.
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

import ftfy
from rapidfuzz import fuzz

# ----------------------------------------------------------------------------- HTML -> text

#: Elements whose content is never article text (``pre``: code listings are not prose).
_SKIP = frozenset(
    {
        "script", "style", "noscript", "template", "head", "title", "iframe", "object", "embed",
        "svg", "math", "canvas", "figcaption", "button", "select", "option", "textarea", "nav",
        "aside", "footer", "form", "video", "audio", "pre",
    }
)  # fmt: skip
#: Elements that start and end a paragraph.
_BLOCK = frozenset(
    {
        "address", "article", "blockquote", "caption", "center", "dd", "details", "dialog",
        "div", "dl", "dt", "fieldset", "figure", "h1", "h2", "h3", "h4", "h5", "h6", "header",
        "hgroup", "hr", "li", "main", "ol", "p", "pre", "section", "summary", "table", "tbody",
        "td", "tfoot", "th", "thead", "tr", "ul", "body", "html",
    }
)  # fmt: skip
#: Void elements: they never get an end tag, so they must not open a skipped region.
_VOID = frozenset({"br", "hr", "img", "input", "meta", "link", "source", "track", "wbr", "area"})

_PARA = "\ue000"  # paragraph marker (private use), removed from the input first

#: Tag names worth a second pass when HTML was escaped twice (``&lt;p&gt;`` in a feed).
_ESCAPED_TAG = re.compile(
    r"</?(?:p|a|br|div|span|img|b|i|em|strong|ul|ol|li|h[1-6]|blockquote|figure|figcaption|"
    r"table|tr|td|iframe|script|style|font|center|small|sup|sub|u|s|hr|section|article)"
    r"(?:\s[^<>]{0,500})?/?>|<!\[CDATA\[|<!--",
    re.IGNORECASE,
)
_ENTITY = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")

#: Tell-tale signs of UTF-8 read as Latin-1/cp1252 ("Ã©", "â€™", "Ã ") or of C1 controls.
_SUSPECT = re.compile(r"[\u0080-\u009f\u00c2\u00c3\u00c5\u00d0\u00d1\ufffd]|â€|ï»")
_FTFY = ftfy.TextFixerConfig(unescape_html=False, uncurl_quotes=False, explain=False)

#: Spaces of every kind (NBSP, narrow NBSP before French punctuation, ...) become one space;
#: zero-width characters and soft hyphens disappear.
_SPACES = re.compile(r"[ \t\f\v\r\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]+")
_INVISIBLE = re.compile(r"[\u00ad\u200b-\u200d\u2060\ufeff]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")


class _TextExtractor(HTMLParser):
    """Collects text and paragraph breaks; tolerant of any tag soup (HTMLParser never raises)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP and tag not in _VOID:
            self._skip.append(tag)
        elif tag == "br":
            self.parts.append("\n")
        elif tag in _BLOCK:
            self.parts.append(_PARA)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # <br/>, <p/>, <script/>: a self-closed element has no content to skip.
        if tag == "br":
            self.parts.append("\n")
        elif tag in _BLOCK:
            self.parts.append(_PARA)

    def handle_endtag(self, tag: str) -> None:
        if self._skip:
            if tag in self._skip:
                # Close up to the matching open tag, so a stray inner tag can't hide the rest.
                while self._skip and self._skip.pop() != tag:
                    pass
            return
        if tag in _BLOCK:
            self.parts.append(_PARA)

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def _normalize(text: str) -> str:
    """Fix mojibake, unify spaces, keep paragraphs ("\\n\\n") and line breaks ("\\n")."""
    text = _CONTROL.sub(" ", text)
    if _SUSPECT.search(text):  # ftfy is thorough but slow: only when mojibake is likely
        text = ftfy.fix_text(text, _FTFY)
    text = _INVISIBLE.sub("", text)
    paragraphs = []
    for para in text.split(_PARA):
        lines = [_SPACES.sub(" ", line).strip() for line in para.split("\n")]
        block = "\n".join(line for line in lines if line)
        if block:
            paragraphs.append(block)
    return "\n\n".join(paragraphs)


def html_to_text(html_text: str) -> str:
    """HTML (or tag soup) -> text with paragraph boundaries ("\\n\\n") and line breaks kept."""
    text = html_text.replace(_PARA, "")
    for _ in range(3):
        parser = _TextExtractor()
        # Blank lines inside text nodes are paragraph breaks in the feeds we read (plain text
        # mixed with a few tags), though a browser would collapse them.
        parser.feed(re.sub(r"\n[ \t\r\f\v\u00a0]*\n\s*", _PARA, text))
        parser.close()
        text = "".join(parser.parts)
        # HTML escaped twice shows up as literal tags or entities after one pass: go again.
        if not _ESCAPED_TAG.search(text) and not _ENTITY.search(text):
            break
        if not _ESCAPED_TAG.search(text):
            text = html.unescape(text)
            break
    text = _ENTITY.sub(lambda m: html.unescape(m.group(0)), text)
    return _normalize(text)


_HTML_HINT = re.compile(
    r"<(?:p|br|div|span|a|html|body|article|section|h[1-6]|ul|ol|li|img|b|i|em|strong|"
    r"blockquote|table|figure|s|u|sup|sub|small|font|code|pre|q|cite|mark|del|ins)\b[^<>]*>"
    r"|</[a-z][a-z0-9]{0,10}>|&(?:#\d+|#x[0-9a-f]+|[a-z]+);",
    re.IGNORECASE,
)


def looks_like_html(text: str) -> bool:
    """True when the string carries HTML tags or entities (else it is taken as plain text)."""
    return _HTML_HINT.search(text) is not None


def plain_to_text(text: str) -> str:
    """Plain text -> the same shape as ``html_to_text`` (blank lines separate paragraphs)."""
    text = text.replace(_PARA, "")
    return _normalize(re.sub(r"\n[ \t\r\f\v\u00a0]*\n\s*", _PARA, text.replace("\r\n", "\n")))


# ----------------------------------------------------------------------------- boilerplate

_END = r"[\s.:!…»›→>\-–—|]*"  # trailing punctuation and arrows on boilerplate lines

# Each pattern must match a whole line (case-insensitive); the int is the longest such line in
# words, so a real sentence that merely starts like boilerplate survives.
_LINE_RULES: tuple[tuple[re.Pattern[str], int], ...] = tuple(
    (re.compile(p, re.IGNORECASE), n)
    for p, n in (
        # share / follow / subscribe
        (r"(share|partager|partagez)(\s*[:!]?|\s*:.*| (this|these|cet|cette|ce|l['’]\w+|on|sur|"
         r"via|it|with|the (article|story|post|page))\b.*)", 10),
        (r"(follow|suivez|suivre|retrouvez)[- ](us|nous)\b.*", 14),
        (r"(subscribe|abonnez[- ]vous|s['’]abonner|sign up|inscrivez[- ]vous)\b.*", 15),
        (r"(newsletter|infolettre)" + _END, 2),
        (
            r"((facebook|twitter|x|linkedin|whatsapp|e-?mail|mail|print|imprimer|reddit|"
            r"pinterest|telegram|mastodon|bluesky|threads|tweet|copy link|copier le lien|"
            r"flipboard|pocket)[\s,|·•/]*)+",
            12,
        ),
        # read more / the rest of the article elsewhere
        (r"(read|view|see|voir) (the )?(full |whole |original |entire )?"
         r"(article|story|post|more|report)\b.*", 8),
        (r"(continue reading|keep reading|continuer la lecture)\b.*", 15),
        (r"(lire|voir) (la suite|l['’]article|plus|le reste)\b.*", 12),
        (r"(en savoir plus|la suite|la suite ici|more|more here|plus)" + _END, 4),
        (r"(click|cliquez|cliquer) (here|ici)\b.*", 12),
        (r"(à|a) lire (aussi|également|egalement|ailleurs)\b.*", 25),
        (r"(lire|voir) (aussi|également)\s*:.*", 25),
        (r"(related( articles?| stories| posts| content| reading| links)?|see also|also read|"
         r"read also|more on this( topic| story)?|sur le même sujet|à voir aussi|"
         r"articles? (en rapport|liés|similaires|connexes|associés))(\s*:.*|"
         + _END + ")", 20),
        (r"\[?(…|\.\.\.)\]?" + _END, 2),
        # sources, copyright, WordPress footers
        (r"(source|sources|via)\s*:.*", 16),
        (r"(©|\(c\)|copyright\b|tous droits réservés|all rights reserved).*", 25),
        (r".*\b(all rights reserved|tous droits réservés|droits de reproduction)\b.*", 25),
        (r"(the|this) (post|article|entry) .+ (appeared|was published) first on .+", 60),
        (r"(l['’]article|l['’]entrée|cet article|ce billet|le billet) .+ est (apparu|paru) "
         r"(en premier|d['’]abord) sur .+", 60),
        # image captions and credits
        (r"(photo|photos|photograph|image|images|illustration|crédits?|credits?|caption|"
         r"légende|picture|pic|vidéo|video|infographie|graphic|cover|visuel|"
         r"(featured|header|cover|top) image|(image|photo) d['’]illustration)"
         r"(\s+(by|de|par|credit|crédit|courtesy|source))?\s*[:|©/].*", 20),
        (r"(photo|photos|image|picture|illustration|photograph)\s+(by|de|par|courtesy of)\b.*",
         14),
        (r"\(?(afp|reuters|ap|getty images|shutterstock|unsplash|istock|dr|d\.r\.)\)?" + _END, 3),
        # translation credits ("FaLang translation system by Faboba", "Traduit par DeepL")
        # (no sentence-final stop inside: "The translation by the ministry was wrong." stays)
        (r"[^.!?]*\b(translation|translations|traduction|translated|traduit|traduite)\b[^.!?]*"
         r"\b(system|by|par|powered|google|deepl|automatique|automatic|machine|plugin)\b[^.!?]*",
         12),
        (r"(machine|automatic|automatically|auto)[- ]translat.*", 15),
        (r"powered by .*", 8),
        # advertising, comments, tags
        (r"(advertisement|advertising|publicité|sponsored|sponsorisé|annonce|ad|pub)" + _END, 2),
        (r"\d+\s+(comments?|commentaires?|réactions?|responses?)" + _END, 3),
        (r"((leave|post|add|write) a (comment|reply)|laisser un commentaire|"
         r"(no|aucun) (comments?|commentaire)).*", 8),
        (r"(commentaires?|comments?|réagir|réactions?)" + _END, 2),
        (r"(tags?|mots[- ]clés|étiquettes|catégories|categories|category|catégorie|"
         r"filed under|posted in|publié dans|classé dans)\s*:.*", 25),
        # lines of nothing but punctuation, bullets or arrows
        (r"[\W_]*", 1000),
    )
)  # fmt: skip

#: Longest-allowed first, so a long line stops at the first rule it is too long for.
_RULES_BY_LIMIT = sorted(((n, rule) for rule, n in _LINE_RULES), key=lambda r: -r[0])

#: Inline tails: "... the end of a paragraph. Read more »", "[…]", "Continue reading Title →".
_TAIL = re.compile(
    r"(\s*(\[(…|\.\.\.)\]|\((…|\.\.\.)\))"
    r"|\s+(read more|lire la suite|continue reading|continuer la lecture|en savoir plus)"
    r"\b[^.!?]{0,120}$)\s*$",
    re.IGNORECASE,
)
_TERMINAL = re.compile(r"[.!?…:;][\"'»”’)\]]*$")
_WORD = re.compile(r"\w+")


def _tail(m: re.Match[str]) -> str:
    # "the company will [...]" was cut by the publisher: say so with an ellipsis instead.
    start = m.start()
    cut_mid_sentence = start > 0 and m.string[start - 1].isalnum()
    return "…" if cut_mid_sentence and m.group(2) else ""


def _words(text: str) -> int:
    return len(text.split())


def is_boilerplate_line(line: str) -> bool:
    """True when one line of text is a share/read-more/source/credit/copyright line."""
    stripped = line.strip().strip("•·*-–—|> ").strip()
    if not stripped:
        return True
    n = _words(stripped)
    for limit, rule in _RULES_BY_LIMIT:
        if n > limit:
            return False  # every remaining rule is for shorter lines
        if rule.fullmatch(stripped):
            return True
    return False


def is_heading(paragraph: str) -> bool:
    """A single short line with no sentence-final punctuation: a title, tagline or subhead."""
    return "\n" not in paragraph and _words(paragraph) <= 20 and not _TERMINAL.search(paragraph)


def _fold(text: str) -> str:
    return " ".join(_WORD.findall(text.casefold()))


def same_as_title(text: str, title: str) -> bool:
    """The text repeats the title (allowing for stray characters and case)."""
    a, b = _fold(text), _fold(title)
    if not a or not b:
        return False
    return a == b or (abs(len(a) - len(b)) <= max(3, len(b) // 10) and fuzz.ratio(a, b) >= 90)


def strip_boilerplate(text: str, *, title: str | None = None) -> str:
    """Drop boilerplate lines from clean text; with ``title``, also the repeated title and the
    site taglines standing above it. Paragraphs stay separated by blank lines."""
    paragraphs: list[str] = []
    for para in text.split("\n\n"):
        kept = []
        for line in para.split("\n"):
            if is_boilerplate_line(line):
                continue
            line = _TAIL.sub(_tail, line).rstrip()
            if line and not is_boilerplate_line(line):
                kept.append(line)
        if kept:
            paragraphs.append("\n".join(kept))
    return "\n\n".join(_drop_leading_headings(paragraphs, title))


def _drop_leading_headings(paragraphs: list[str], title: str | None) -> list[str]:
    # The title repeated in the body, and whatever short headings stand above it (a site's
    # tagline, a rubric), are not article text.
    if title:
        for i, para in enumerate(paragraphs[:4]):
            if same_as_title(para, title) and all(is_heading(p) for p in paragraphs[:i]):
                return paragraphs[i + 1 :]
    # Without a known title: two headings in a row at the top are a tagline and a title.
    if (
        len(paragraphs) >= 3
        and is_heading(paragraphs[0])
        and is_heading(paragraphs[1])
        and _words(paragraphs[0]) <= 8
    ):
        return paragraphs[1:]
    return paragraphs


def to_text(content: str, *, title: str | None = None) -> str:
    """HTML or plain text -> clean text without boilerplate (what summaries are drawn from)."""
    raw = html_to_text(content) if looks_like_html(content) else plain_to_text(content)
    return strip_boilerplate(raw, title=title)
