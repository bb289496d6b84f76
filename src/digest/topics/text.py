"""Text folding and term expansion shared by the topic matcher and story de-duplication.

``fold`` is the one normalizer: lowercase, no accents, every run of non-word characters becomes
one space (so elisions and hyphens split words). Terms are expanded to their inflections once,
when a matcher is compiled, so matching itself never lemmatizes.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import unicodedata
from collections.abc import Mapping, Sequence
from functools import lru_cache

import simplemma

# Characters replaced before anything else, by both paths below: ligatures that fold to two
# letters, and typographic apostrophes, quotes, dashes and spaces (all word separators).
_PAIRS: tuple[tuple[str, str], ...] = (
    ("œ", "oe"),
    ("Œ", "oe"),
    ("æ", "ae"),
    ("Æ", "ae"),
    ("ß", "ss"),
    *((c, " ") for c in "’‘‛“”«»‹›–—‒―‐‑…•·€£§°\u00a0\u202f\u2009\u200b\u2007"),
)
_COMBINING = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]+")
_NON_WORD = re.compile(r"[\W_]+")


def _fold_unicode(text: str) -> str:
    # The general path: keeps every script's letters. Also the reference the fast path is
    # built from (and tested against).
    text = text.encode("utf-8", "replace").decode("utf-8")  # lone surrogates -> "?"
    for _ in range(4):  # NFKD, lower() and the pairs can each uncover work for the others
        new = text
        for a, b in _PAIRS:
            if a in new:
                new = new.replace(a, b)
        new = _COMBINING.sub("", unicodedata.normalize("NFKD", new)).lower()
        new = " ".join(_NON_WORD.sub(" ", new).split())
        if new == text:
            break
        text = new
    return text


def _fast_tables() -> tuple[bytes, tuple[tuple[str, str], ...]]:
    # French and English text is Latin-1 once typographic punctuation is replaced; encoding is
    # done in C, and a 256-byte table then folds each byte exactly as _fold_unicode folds that
    # character. Characters whose fold is not one Latin-1 character are replaced beforehand.
    table = bytearray(b" " * 256)
    pre: list[tuple[str, str]] = []
    for byte in range(256):
        ch = chr(byte)
        f = _fold_unicode(ch)
        if len(f) == 1 and ord(f) < 256:
            table[byte] = ord(f)
        elif f:
            pre.append((ch, f))
    return bytes(table), tuple(pre)


_TABLE, _MULTI = _fast_tables()
#: Replaced before encoding: multi-letter folds, and separators outside Latin-1 (’ « — …).
_PRE = (*_MULTI, *(p for p in _PAIRS if ord(p[0]) > 255))


def fold_bytes(text: str) -> tuple[bytes, bool]:
    """``fold`` without merging the spaces punctuation leaves ("a, b" -> "a  b"), as UTF-8.

    The matcher's fast path: word boundaries are spaces either way, and phrases never span
    punctuation. Whitespace runs of the original are merged, so phrases survive line breaks.
    The flag tells whether byte ``i`` of the result still stands for character ``i`` of
    ``text`` (true for most text), so a match can be shown as the original words.
    """
    aligned = True
    if "  " in text or "\n" in text or "\t" in text or "\r" in text:
        text = " ".join(text.split())
        aligned = False
    if text.isascii():
        return text.encode("ascii").translate(_TABLE), aligned
    s = text
    for a, b in _PRE:
        if a in s:
            s = s.replace(a, b)
            aligned = aligned and len(b) == 1
    try:
        raw = s.encode("latin-1").translate(_TABLE)
    except UnicodeEncodeError:
        return _fold_unicode(text).encode("utf-8"), False
    if not raw.isascii():  # letters such as "ø" or "ð" stay: re-encode them as UTF-8
        return raw.decode("latin-1").encode("utf-8"), False
    return raw, aligned


def fold_spaced(text: str) -> str:
    """``fold_bytes`` as a string."""
    return fold_bytes(text)[0].decode("utf-8")


def fold(text: str) -> str:
    """Case- and accent-fold ``text``; apostrophes, hyphens and punctuation become single spaces.

    ``fold("L’Hébergeur du Cloud-Act")`` is ``"l hebergeur du cloud act"``. Idempotent, and it
    never raises: any string (lone surrogates included) folds to a string.
    """
    return " ".join(fold_spaced(text).split())


# --------------------------------------------------------------------------- term expansion

#: Words this short (articles, prepositions) are never inflected.
_MIN_INFLECT = 4

_SUFFIX_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    # (ending, replacements): candidate forms, each then checked against simplemma's lemma.
    ("", ("s", "es", "e", "x")),
    ("s", ("",)),
    ("e", ("es", "s", "")),
    ("es", ("e", "")),
    ("é", ("ée", "és", "ées", "er")),
    ("ée", ("é", "és", "ées")),
    ("er", ("é", "ée", "és", "ées", "e", "es", "ent")),
    ("el", ("elle", "elles", "els")),
    ("elle", ("el", "els", "elles")),
    ("al", ("aux", "ale", "ales")),
    ("aux", ("al",)),
    ("if", ("ive", "ifs", "ives")),
    ("ive", ("if", "ifs", "ives")),
    ("ien", ("ienne", "iens", "iennes")),
    ("eur", ("euse", "eurs", "euses", "rice", "rices")),
    ("y", ("ies",)),
    ("ies", ("y",)),
    ("e", ("ed", "ing")),
    ("", ("ed", "ing")),
)


@lru_cache(maxsize=4096)
def _lemmas(word: str) -> frozenset[str]:
    out = set()
    for lang in ("fr", "en"):
        try:
            out.add(simplemma.lemmatize(word, lang=lang))
        except (ValueError, KeyError):  # simplemma refuses some odd tokens; keep the word
            out.add(word)
    return frozenset(out)


#: Word forms known before this process asked simplemma (``remember_forms``: the pipeline's
#: on-disk cache), and those computed since (``computed_forms``), by lowercase word.
_KNOWN_FORMS: dict[str, tuple[str, ...]] = {}
_COMPUTED_FORMS: dict[str, tuple[str, ...]] = {}


def forms_version() -> str:
    """What word forms depend on: simplemma's version (its dictionaries), the rules above and
    the code that applies them. A cache of ``inflections`` written under another must not be
    used."""
    made = hashlib.sha256(repr((_MIN_INFLECT, _SUFFIX_RULES)).encode())
    for fn in (_inflect, _lemmas.__wrapped__):
        made.update(fn.__code__.co_code + repr(fn.__code__.co_consts).encode())
    return f"simplemma {simplemma.__version__}; rules {made.hexdigest()[:16]}"


def remember_forms(forms: Mapping[str, Sequence[str]]) -> None:
    """Take word forms computed by an earlier process (same ``forms_version``): loading
    simplemma's French and English dictionaries costs ~0.4 s of CPU per process, and a
    matcher whose words are all known never loads them."""
    _KNOWN_FORMS.update((w, tuple(f)) for w, f in forms.items())


def computed_forms() -> dict[str, tuple[str, ...]]:
    """Word forms this process computed with simplemma (not given by ``remember_forms``)."""
    return dict(_COMPUTED_FORMS)


@lru_cache(maxsize=4096)
def inflections(word: str) -> tuple[str, ...]:
    """Forms of ``word`` (lowercase, accents kept) that share its French or English lemma.

    ``inflections("personnelle")`` includes ``personnelles`` and ``personnel``. A plain ``s``
    plural is always allowed (acronyms and jargon such as "hyperscalers" are unknown to the
    lemmatizer); other forms must lemmatize like the word itself.
    """
    word = word.lower()
    if len(word) < _MIN_INFLECT or not word.isalpha():
        return (word,)
    known = _KNOWN_FORMS.get(word)
    if known is not None:
        return known
    forms = _inflect(word)
    _COMPUTED_FORMS[word] = forms
    return forms


def _inflect(word: str) -> tuple[str, ...]:
    base = _lemmas(word)
    forms = {word}
    if not word.endswith(("s", "x", "z")):
        forms.add(word + "s")
    for ending, repl in _SUFFIX_RULES:
        if not word.endswith(ending):
            continue
        stem = word[: len(word) - len(ending)] if ending else word
        for r in repl:
            cand = stem + r
            if cand not in forms and len(cand) >= 3 and _lemmas(cand) & (base | {word}):
                forms.add(cand)
    return tuple(sorted(forms))


_TERM_WORD = re.compile(r"(\w+)(\*?)")
#: A phrase of many long words would multiply into thousands of forms; beyond this, the first
#: forms of each word are kept (the common inflections sort first).
_MAX_VARIANTS = 256


def expand_term(text: str, *, inflect: bool = True) -> tuple[tuple[str, bool], ...]:
    """The folded forms a plain (non-regex) term matches, each with its prefix flag.

    A word ending in ``*`` matches any word starting with it (``héberg*``); other words match
    their inflections unless ``inflect`` is false. Returns ``(folded phrase, last word is a
    prefix)`` pairs; empty when the term has no word at all.
    """
    words = [(m.group(1).lower(), bool(m.group(2))) for m in _TERM_WORD.finditer(text)]
    if not words:
        return ()
    choices: list[tuple[str, ...]] = []
    for w, prefix in words:
        if prefix or not inflect:
            choices.append((w,))
        else:
            choices.append(inflections(w))
    out: dict[str, bool] = {}
    for combo in itertools.islice(itertools.product(*choices), _MAX_VARIANTS):
        folded = fold(" ".join(combo))
        if folded:
            out[folded] = words[-1][1]
    return tuple(out.items())


def inner_prefix_pattern(text: str, *, inflect: bool = True) -> str | None:
    """A regex over folded text for a phrase with a ``*`` word before its end, else None.

    ``"héberg* des données"`` -> ``(?<= )heberg\\w* des (?:donnee|donnees)(?= )``: the
    automaton only knows whole words and trailing prefixes, so such terms run as a regex.
    """
    words = [(m.group(1).lower(), bool(m.group(2))) for m in _TERM_WORD.finditer(text)]
    if not any(p for _, p in words[:-1]):
        return None
    parts: list[str] = []
    for w, prefix in words:
        if prefix:
            parts.append(re.escape(fold(w)) + r"\w*")
        else:
            forms = sorted({fold(f) for f in (inflections(w) if inflect else (w,))} - {""})
            parts.append("(?:" + "|".join(re.escape(f) for f in forms) + ")")
    return "(?<= )" + " ".join(parts) + "(?= )"
