"""Case-sensitive terms: acronyms ("ICO", "CNIL") and ``case:`` terms, checked in the original text.

The matcher finds their folded form in its one scan; only then is the original case checked.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import NamedTuple

from digest.topics.text import fold

#: A term written as one token of 2-6 capitals/digits (at least two capitals) is an acronym:
#: "ICO" must not match the ".ico" file extension, nor "CNIL" a lowercase word.
ACRONYM = re.compile(r"(?=(?:[^A-Z]*[A-Z]){2})[A-Z][A-Z0-9]{1,5}")


def case_pattern(body: str) -> tuple[CaseTerm, tuple[tuple[str, bool], ...]]:
    """The case-sensitive pattern over the original text for a ``case`` term, and its keys.

    The term matches as written, word-bounded, across any punctuation between its words. An
    acronym of four letters or more also matches capitalized, as the French press writes it
    ("Cnil", "Anssi"), and takes a plural "s" ("CNILs"); shorter ones match only in capitals.
    """
    words = re.findall(r"[^\W_]+", body)
    long_acronym = len(words) == 1 and len(words[0]) >= 4 and words[0].isupper()
    plural = long_acronym
    body_rx = r"[\W_]+".join(re.escape(w) for w in words) + ("s?" if plural else "")
    rx = re.compile(rf"(?<![^\W_]){body_rx}(?![^\W_])")
    forms = [" ".join(words)] + ([" ".join(words) + "s"] if plural else [])
    spellings = (words[0], words[0].capitalize()) if long_acronym else tuple(words[:1])
    term = CaseTerm(spellings if len(words) == 1 else (), plural, rx)
    return term, tuple((fold(f), False) for f in forms)


class CaseTerm(NamedTuple):
    """A case-sensitive term: one word is counted with ``str.find`` (a literal-first scan is
    far cheaper than a regex whose lookbehind defeats the literal prefilter), phrases by regex.
    """

    words: tuple[str, ...]  # the spellings of a one-word term ("CNIL", "Cnil"); () for phrases
    plural: bool
    rx: re.Pattern[str]

    def mentions(self, s: str, cap: int) -> int:
        if not self.words:
            return len(self.rx.findall(s))
        n = 0
        for w in self.words:
            i, size = s.find(w), len(w)
            while i >= 0 and n < cap:
                end = i + size
                if self.plural and s.startswith("s", end):
                    end += 1
                if (i == 0 or not s[i - 1].isalnum()) and (end >= len(s) or not s[end].isalnum()):
                    n += 1
                i = s.find(w, i + 1)
        return n


_UPPER = bytes(b for b in range(256) if chr(b).isupper())
_LOWER = bytes(b for b in range(256) if chr(b).islower())


@lru_cache(maxsize=8)  # asked once per case term found in the item: the same two strings
def shouting(s: str) -> bool:
    """A field written in capitals ("CNIL FINES BRITISH AIRWAYS") says nothing about case."""
    # The opening tells; letters are counted in C (Latin-1 covers French and English).
    b = s[:400].encode("latin-1", "ignore")
    upper = len(b) - len(b.translate(None, _UPPER))
    return upper > 6 and (len(b) - len(b.translate(None, _LOWER))) * 10 < upper
