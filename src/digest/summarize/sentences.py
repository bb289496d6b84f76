"""Sentence splitting for French and English news text that knows abbreviations ("M.", "Mme",
"Dr.", "e.g.", "art. 6", "U.S.") and numbers ("1.5 billion"); other scripts split on their stops.
"""

from __future__ import annotations

import re

#: Words that end with a period without ending the sentence (lowercase, without the last dot).
ABBREVIATIONS = frozenset(
    {
        # English
        "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "vs", "approx", "dept", "inc",
        "ltd", "corp", "gov", "govt", "gen", "sen", "rep", "rev", "lt", "col", "capt", "sgt",
        "adm", "pres", "e.g", "i.e", "cf", "al", "u.s", "u.k", "u.n", "e.u", "a.m", "p.m", "ph.d",
        "eds", "univ", "assn", "bros",
        # French
        "mm", "mme", "mmes", "mlle", "mlles", "pr", "ste", "av", "bd", "boul", "env", "éd",
        "coll", "hab", "sq", "ibid", "resp", "qqch", "qqn", "c.-à-d", "j.-c", "dép", "mgr",
    }
)  # fmt: skip

#: Abbreviations that only stand before a number ("art. 6", "No. 5", "p. 12", "Sept. 3"):
#: elsewhere they are ordinary words ("no.", "sept.") that may end a sentence.
BEFORE_NUMBER = frozenset(
    {
        "no", "nos", "nr", "vol", "vols", "p", "pp", "fig", "figs", "ch", "chap", "sec", "art",
        "arts", "t", "n", "nº", "op", "tel", "ca", "jan", "feb", "mar", "apr", "jun", "jul",
        "aug", "sep", "sept", "oct", "nov", "dec", "janv", "févr", "fév", "avr", "juil", "déc",
    }
)  # fmt: skip

#: Capitalized words that start a new sentence after "U.S." or "e.g." ends one.
_STARTERS = frozenset(
    {
        "the", "a", "an", "it", "this", "that", "these", "those", "he", "she", "they", "we", "i",
        "in", "but", "and", "on", "at", "for", "its", "his", "her", "their", "there", "as",
        "le", "la", "les", "l", "il", "elle", "ils", "elles", "ce", "cette", "ces", "un", "une",
        "des", "en", "mais", "et", "nous", "dans", "pour", "selon",
    }
)  # fmt: skip

# A stop (and closing quotes/brackets, possibly after a French space) then the spaces after it.
_STOP = re.compile(r"(?P<punct>[.!?…]+|[。！？۔؟।]+)(?P<close>(?:\s?[\"'»”’)\]])*)(?P<space>\s*)")
_CJK_STOPS = frozenset("。！？")
_OPENERS = frozenset("«\"“‘'([¿¡-—–")
_FIRST_WORD = re.compile(r"[\w'’]+")


def _is_boundary(text: str, m: re.Match[str]) -> bool:
    punct, space, end = m.group("punct"), m.group("space"), m.end()
    if end >= len(text):
        return True
    if not space and punct[-1] not in _CJK_STOPS:
        return False  # "1.5", "e.g.,", "example.com": no space, no boundary
    nxt = text[end]
    if nxt.islower():
        return False  # "etc. and", "art. l'article": sentences start with a capital
    if not (nxt.isalnum() or nxt in _OPENERS):
        return False
    if punct != ".":
        return True
    start = m.start()
    token = text[text.rfind(" ", 0, start) + 1 : start].lstrip("(«\"“‘'[").casefold()
    if not token:
        return True
    if token in BEFORE_NUMBER and nxt.isdigit():
        return False
    if len(token) == 1 and token.isalpha():
        return False  # an initial: "J. Smith", "M. Macron"
    starter = _FIRST_WORD.match(text, end)
    next_word = starter.group(0).casefold().rstrip("'’") if starter else ""
    if token in ABBREVIATIONS or ("." in token and token.replace(".", "").isalpha()):
        # "U.S." and "e.g." may end a sentence too: only a typical sentence start says so.
        return "." in token and next_word in _STARTERS
    return True


def split_paragraph(paragraph: str) -> list[str]:
    """One paragraph (lines joined) -> its sentences, in order, stripped."""
    text = " ".join(line.strip() for line in paragraph.split("\n") if line.strip())
    sentences: list[str] = []
    start = 0
    for m in _STOP.finditer(text):
        if _is_boundary(text, m):
            cut = m.end() - len(m.group("space"))
            sentence = text[start:cut].strip()
            if sentence:
                sentences.append(sentence)
            start = m.end()
    rest = text[start:].strip()
    if rest:
        sentences.append(rest)
    return sentences


def split_paragraphs(text: str) -> list[list[str]]:
    """Clean text (paragraphs separated by blank lines) -> sentences per paragraph."""
    out = []
    for para in re.split(r"\n\s*\n", text):
        sentences = split_paragraph(para)
        if sentences:
            out.append(sentences)
    return out


def split_sentences(text: str) -> list[str]:
    """Clean text -> every sentence in order; a sentence never spans two paragraphs."""
    return [s for para in split_paragraphs(text) for s in para]
