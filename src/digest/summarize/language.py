"""Language of an item's text: the feed's declared language when the text agrees with it,
else function words and simplemma (Latin scripts) or the script itself (Cyrillic, Arabic, CJK...).
"""

from __future__ import annotations

import re
from collections import Counter

from simplemma import in_target_language, langdetect
from simplemma.strategies.dictionaries.dictionary_factory import SUPPORTED_LANGUAGES

UNDETERMINED = "und"

#: Tried first: the languages the digest is about, cheap to tell apart.
_PRIMARY = ("en", "fr")
#: Enough text to decide; more only costs time.
_SAMPLE_CHARS = 1200

_SCRIPTS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("latin", re.compile(r"[A-Za-z\u00c0-\u024f]")),
    ("cyrillic", re.compile(r"[\u0400-\u04ff]")),
    ("arabic", re.compile(r"[\u0600-\u06ff\u0750-\u077f\ufb50-\ufdff\ufe70-\ufeff]")),
    ("hebrew", re.compile(r"[\u0590-\u05ff]")),
    ("greek", re.compile(r"[\u0370-\u03ff]")),
    ("kana", re.compile(r"[\u3040-\u30ff]")),
    ("hangul", re.compile(r"[\uac00-\ud7af]")),
    ("han", re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")),
    ("devanagari", re.compile(r"[\u0900-\u097f]")),
)
#: Languages written in each non-Latin script, the first being the default guess.
_SCRIPT_LANGS = {
    "cyrillic": ("ru", "uk", "bg", "sr", "mk", "be", "kk"),
    "arabic": ("ar", "fa", "ur", "ps"),
    "hebrew": ("he", "yi"),
    "greek": ("el",),
    "kana": ("ja",),
    "hangul": ("ko",),
    "han": ("zh", "ja"),
    "devanagari": ("hi", "mr", "ne"),
}
_LANG_TAG = re.compile(r"^\s*([A-Za-z]{2,3})(?:[-_][A-Za-z0-9]{1,8})*\s*$")


def normalize_tag(declared: str | None) -> str | None:
    """ "en-US", "fr_FR", " FR " -> "en", "fr"; anything that is not a language tag -> None."""
    if not declared:
        return None
    m = _LANG_TAG.match(declared)
    return m.group(1).lower() if m else None


#: Any letter of a script other than Latin: most texts hold none, and then only Latin counts.
_NON_LATIN = re.compile("[" + "".join(rx.pattern[1:-1] for _, rx in _SCRIPTS[1:]) + "]")


def dominant_script(text: str) -> str | None:
    """The script most letters of ``text`` are written in, or None when there are none."""
    if text.isascii() or _NON_LATIN.search(text) is None:  # one scan instead of nine
        return "latin" if _SCRIPTS[0][1].search(text) else None
    counts = Counter({name: len(rx.findall(text)) for name, rx in _SCRIPTS})
    name, n = counts.most_common(1)[0]
    if n == 0:
        return None
    if name == "han" and counts["kana"]:
        return "kana"  # Japanese mixes kanji and kana
    return name


#: Function words that are frequent in one of the two main languages and rare in the other
#: (and in Spanish, Italian, German): counting them settles most texts in microseconds.
_EN_WORDS = frozenset(
    {
        "the", "and", "of", "to", "is", "that", "for", "with", "was", "are", "this", "be",
        "from", "have", "has", "which", "will", "were", "been", "their", "they", "it", "on",
        "by", "at", "would", "its",
    }
)  # fmt: skip
_FR_WORDS = frozenset(
    {
        "le", "les", "des", "du", "et", "est", "une", "qui", "pour", "dans", "sur", "pas", "au",
        "aux", "avec", "cette", "sont", "ont", "il", "elle", "ces", "nous", "vous", "mais", "été",
        "être", "leur",
    }
)  # fmt: skip
_TOKENS = re.compile(r"[^\W\d_]+")


def quick_en_fr(sample: str, min_hits: int = 6) -> str | None:
    """ "en" or "fr" when the function words leave no doubt, else None (ask simplemma).
    A lower ``min_hits`` judges a single sentence or paragraph."""
    words = _TOKENS.findall(sample[:600].casefold())
    counts = Counter(words)  # counted in C; then only the few distinct function words are summed
    en = sum(counts[w] for w in _EN_WORDS.intersection(counts))
    fr = sum(counts[w] for w in _FR_WORDS.intersection(counts))
    if en >= min_hits and en >= 4 * fr and en >= 0.15 * len(words):
        return "en"
    if fr >= min_hits and fr >= 4 * en and fr >= 0.15 * len(words):
        return "fr"
    return None


#: The same idea for the other common Latin-script languages of the feeds we read.
_MARKERS: dict[str, frozenset[str]] = {
    "de": frozenset(
        {
            "der", "die", "das", "und", "ist", "nicht", "mit", "von", "den", "zu", "sich",
            "auf", "für", "dem", "ein", "eine", "auch", "werden", "wird", "sind"
        }
    ),
    "es": frozenset(
        {
            "el", "los", "las", "y", "es", "del", "por", "para", "una", "se", "su", "al",
            "lo", "como", "más", "pero", "está"
        }
    ),
    "it": frozenset(
        {
            "il", "gli", "di", "della", "che", "è", "per", "con", "una", "non", "sono",
            "anche", "più", "nel", "alla"
        }
    ),
    "pt": frozenset(
        {
            "os", "as", "é", "do", "da", "dos", "das", "em", "para", "com", "um", "uma",
            "não", "ao", "mais", "como", "está"
        }
    ),
    "nl": frozenset(
        {
            "het", "een", "en", "van", "is", "dat", "op", "te", "voor", "met", "zijn", "niet",
            "ook", "aan", "er", "om", "door"
        }
    ),
}  # fmt: skip


def _quick_other(sample: str) -> str | None:
    words = _TOKENS.findall(sample[:600].casefold())
    counts = Counter(words)
    hits = sorted(
        ((sum(counts[w] for w in m.intersection(counts)), code) for code, m in _MARKERS.items()),
        reverse=True,
    )
    (best, lang), (second, _) = hits[0], hits[1]
    if best >= 3 and best >= 0.15 * len(words) and best >= 2 * second:
        return lang
    return None


#: Letters only Urdu uses (ٹ ڈ ڑ ں ہ ے), and letters Persian and Urdu add to Arabic (پ چ ژ گ).
_URDU = re.compile(r"[\u0679\u0688\u0691\u06ba\u06c1\u06d2]")
_PERSIAN = re.compile(r"[\u067e\u0686\u0698\u06af]")


def _arabic_script_language(sample: str) -> str:
    if len(_URDU.findall(sample)) >= 3:
        return "ur"
    if len(_PERSIAN.findall(sample)) >= 3:
        return "fa"
    return "ar"


def _words_longer_than_one(sample: str, enough: int) -> int:
    """How many words of ``sample`` have two letters or more, counting up to ``enough``."""
    n = 0
    for m in _TOKENS.finditer(sample):
        if m.end() - m.start() > 1:
            n += 1
            if n >= enough:
                break
    return n


def surely_read(text: str, declared: str | None, languages: frozenset[str]) -> bool:
    """True when ``detect(text, declared)`` is certainly one of ``languages`` or undetermined
    (an item the language check keeps), known without running it. Only when the readers read
    both main languages, the feed declares none or one of ``languages``, and the text is in the
    Latin script (or has no letters): then ``detect`` answers the declared language, French,
    English, undetermined, or (nothing declared) the language its function words name, which
    is looked at here. False means: ask ``detect``."""
    if not languages.issuperset(_PRIMARY):
        return False
    tag = normalize_tag(declared)
    if tag is not None and tag not in languages:
        return False
    sample = text[:_SAMPLE_CHARS]
    script = dominant_script(sample)
    if script is None:
        return True
    if script != "latin":
        return False
    if tag is not None:
        return True
    other = _quick_other(sample)
    return other is None or other in languages


def detect(text: str, declared: str | None = None) -> str:
    """Two-letter language code of ``text`` ("fr", "en", ...); ``declared`` (the feed's
    language) wins whenever the text does not clearly contradict it; "und" if nothing tells."""
    tag = normalize_tag(declared)
    sample = text[:_SAMPLE_CHARS]
    script = dominant_script(sample)
    if script is None:
        return tag or UNDETERMINED
    if script != "latin":
        langs = _SCRIPT_LANGS[script]
        if tag in langs:
            return tag
        if script == "arabic":
            return _arabic_script_language(sample)
        return langs[0]
    if _words_longer_than_one(sample, 4) < 4:
        return tag or UNDETERMINED  # too few words to contradict anyone
    quick = quick_en_fr(sample)
    if quick is not None and (tag is None or tag in _PRIMARY):
        return quick  # a declared "en" on a clearly French text is a feed's mistake
    primary = {str(k): float(v) for k, v in langdetect(sample, lang=_PRIMARY)}
    lang = max(_PRIMARY, key=lambda code: primary.get(code, 0.0))
    score = primary.get(lang, 0.0)
    if tag is not None:
        if tag in _PRIMARY:
            fit = primary.get(tag, 0.0)
        elif tag in _MARKERS and _quick_other(sample) == tag:
            return tag  # its function words agree: no dictionary needed
        elif tag in SUPPORTED_LANGUAGES:
            fit = in_target_language(sample, lang=tag)
        else:
            return tag  # a language simplemma cannot judge: trust the feed
        # Plausible: a good share of the words belong to it and no main language fits much better.
        if fit >= 0.35 and fit >= score - 0.25:
            return tag
    if score >= 0.5:
        return lang
    # Other languages by their function words only: simplemma would have to load five more
    # dictionaries (seconds) and is slow on text it does not know.
    other = _quick_other(sample)
    if other is not None and (tag is None or tag == other):
        return other
    if tag is not None:
        return tag
    return lang if score >= 0.3 else UNDETERMINED
