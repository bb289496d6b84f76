"""Extractive summary: the article's own whole sentences, chosen by lead position and term
weight, kept in their original order, within a word budget, in the article's language.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

from digest.models import Summary
from digest.summarize import clean
from digest.summarize.language import detect, quick_en_fr
from digest.summarize.sentences import split_paragraphs

ENGINE = "extractive"
ELLIPSIS = "…"


def _wordset(words: str) -> frozenset[str]:
    return frozenset(words.split())


_STOPWORDS = _wordset(
    """
    a about after again all also an and any are as at be been before being but by can could
    did do does for from had has have he her his how i if in into is it its just more most
    new no not of on one only or other our out over said says she so some such than that the
    their them then there these they this those to two under up us was we were what when
    where which while who will with would year years you your
    au aux avec ce ces cet cette dans de des du elle elles en est et été être eux il ils je la
    le les leur leurs lui mais me même mes moi mon ne nos notre nous on ont ou où par pas
    pour qu que qui sa sans se ses son sont sur ta te tes toi ton tu un une vos votre vous
    a été fait faire plus comme aussi bien tout tous toute toutes après avant depuis entre
    """
)
#: A sentence opening with one of these leans on the sentence before it.
_DEPENDENT = _wordset(
    """
    however but and also this these that those it they he she its their such moreover
    furthermore meanwhile then still yet so thus therefore instead
    mais cependant pourtant toutefois ainsi donc il elle ils elles ce cette ces cela ceci
    alors puis aussi néanmoins enfin
    """
)
_LEANS_BACK = re.compile(
    r"^[«\"'“(]*(?:"
    + "|".join(sorted(_DEPENDENT))
    + r"|on the (?:one|other) hand|in addition|for (?:example|instance)|as a result|"
    r"by contrast|in contrast|at the same time|d['’]une part|d['’]autre part|par ailleurs|"
    r"en outre|de plus|en revanche|par contre|au contraire|pour autant)\b",
    re.IGNORECASE,
)


def leans_back(sentence: str) -> bool:
    """The sentence points at the one before it ("However, ...", "D'autre part, ...")."""
    return _LEANS_BACK.match(sentence) is not None


#: "Read more about this on our blog.": a pointer elsewhere, not something the article says.
_CALL_TO_ACTION = re.compile(
    r"^(read|learn|find out|click|tap|lire|cliquez|en savoir|découvrez|retrouvez|voir)"
    r" (more|here|plus|la suite|ici|l['’]article|tout)\b",
    re.IGNORECASE,
)
_TOKEN = re.compile(r"[^\W\d_]{3,}")
_CLAUSE = re.compile(r"[,;:](?=\s)|\s[—–-](?=\s)|\s(?=\()")
_TERMINAL = re.compile(r"[.!?…。！？۔؟।][\"'»”’)\]]*$")
#: At most this many sentences: a summary is a glance, not a digest of the article.
MAX_SENTENCES = 3
#: Sentences shorter than this are fragments ("Here we are.") unless nothing else exists.
MIN_WORDS = 5


#: Chinese and Japanese script (Korean separates its words with spaces like English).
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff]")


def count_words(text: str) -> int:
    """Words for the budget; Chinese and Japanese have no spaces: two characters per word."""
    if not _CJK.search(text):
        return len(text.split())
    cjk = len(_CJK.findall(text))
    return len(_CJK.sub("", text).split()) + (cjk + 1) // 2


_words = count_words


def _terms(text: str) -> list[str]:
    return [w for w in _TOKEN.findall(text.casefold()) if w not in _STOPWORDS]


@dataclass(frozen=True, slots=True)
class _Candidate:
    index: int  # position among candidates, i.e. in the article
    text: str
    words: int
    paragraph_start: bool
    #: The paragraph goes on after a stop and then ends without one: the publisher cut it.
    truncated: bool = False


def cut_at_clause(sentence: str, max_words: int) -> str:
    """A sentence over budget -> its longest clause-bounded prefix within budget, plus "…"."""
    if count_words(sentence) <= max_words:
        return sentence
    words = sentence.split()
    # An unspaced script (Chinese, Japanese) is cut by characters.
    head = " ".join(words[:max_words]) if len(words) > max_words else sentence[: max_words * 2]
    cut = None
    for m in _CLAUSE.finditer(head):
        # A clause that short would say too little: prefer the word boundary then.
        if _words(head[: m.start()]) >= max(3, max_words // 3):
            cut = m.start()
    text = head[:cut] if cut is not None else head
    return text.rstrip(" ,;:—–-(\"'«“") + ELLIPSIS


def join_sentences(sentences: list[str]) -> str:
    """Sentences -> one text. A standfirst without a final stop gets one before the next
    sentence; short labels ("Location", "Depth") are set off by a dash instead."""
    out = []
    for i, sentence in enumerate(sentences):
        last = i == len(sentences) - 1
        if not last and not _TERMINAL.search(sentence) and sentence[-1:].isalnum():
            sentence += "." if _words(sentence) >= 6 else " —"
        out.append(sentence)
    return " ".join(out)


def _other_language(text: str, language: str | None) -> bool:
    # A French post quoting English (or the reverse) must not be summarized by the quote.
    if language not in {"en", "fr"}:
        return False
    seen = quick_en_fr(text, min_hits=2)
    return seen is not None and seen != language


def _usable(sentence: str, language: str | None) -> bool:
    if _CALL_TO_ACTION.match(sentence) or clean.is_boilerplate_line(sentence):
        return False
    return not _other_language(sentence, language)


def _candidates(text: str, title: str, language: str | None = None) -> list[_Candidate]:
    body: list[tuple[str, bool, bool]] = []
    headings: list[tuple[str, bool, bool]] = []
    main = language in {"en", "fr"}
    for para in split_paragraphs(text):
        seen = quick_en_fr(" ".join(para), min_hits=2) if main else None
        if len(para) > 1 and seen is not None and seen != language:
            continue  # a quoted passage in the other language
        # Sentences of a paragraph plainly in the item's language need no check of their own.
        check = None if seen == language else language
        heading = len(para) == 1 and clean.is_heading(para[0])
        for i, sentence in enumerate(para):
            if not body and not headings and clean.same_as_title(sentence, title):
                continue  # never open with the title again
            if not _usable(sentence, check):
                continue
            cut = i > 0 and i == len(para) - 1 and not _TERMINAL.search(sentence)
            (headings if heading else body).append((sentence, i == 0, cut))
    # Headings (subtitles, taglines) are not summary material, unless they are all there is.
    chosen = body or headings
    return [_Candidate(i, s, _words(s), start, cut) for i, (s, start, cut) in enumerate(chosen)]


def _teaser(candidates: list[_Candidate]) -> str:
    kept = [c for c in candidates if not c.truncated] or candidates
    texts = [c.text for c in kept]
    last = kept[-1]
    # A long last paragraph with no final stop was cut by the publisher: say so.
    if last.truncated or (last.words > 25 and not _TERMINAL.search(last.text)):
        texts[-1] = texts[-1].rstrip(" ,;:—–-") + ELLIPSIS
    return join_sentences(texts)


def _scores(candidates: list[_Candidate], title: str) -> list[float]:
    freq: Counter[str] = Counter()
    per_sentence = [_terms(c.text) for c in candidates]
    for terms in per_sentence:
        freq.update(set(terms))
    title_terms = set(_terms(title))
    raw = []
    for terms in per_sentence:
        unique = set(terms)
        weight = sum(freq[t] - 1 + (2 if t in title_terms else 0) for t in unique)
        raw.append(weight / math.sqrt(len(unique) + 1))
    top = max(raw, default=0.0) or 1.0
    scores = []
    for rank, (c, term_weight) in enumerate(zip(candidates, raw, strict=True)):
        lead = 1.0 / (1.0 + 0.35 * rank) + (0.15 if c.paragraph_start else 0.0)
        score = 0.6 * lead + 0.4 * term_weight / top
        if rank and leans_back(c.text):
            score *= 0.6  # out of context it would point at nothing
        if c.words < MIN_WORDS:
            score *= 0.3
        scores.append(score)
    return scores


def summarize_text(text: str, title: str, max_words: int, language: str | None = None) -> str:
    """Clean text -> summary: whole sentences in order within ``max_words`` (see module doc),
    only sentences in ``language`` when it is French or English."""
    candidates = _candidates(text, title, language) or _candidates(text, title)
    if not candidates:
        return ""
    if sum(c.words for c in candidates) <= max_words:
        return _teaser(candidates)  # a teaser: kept as it is, minus a publisher's cut
    lead = candidates[0]
    if lead.words > max_words:
        return cut_at_clause(lead.text, max_words)
    chosen = {lead.index}
    used = lead.words
    scores = _scores(candidates, title)
    for c in sorted(candidates[1:], key=lambda c: scores[c.index], reverse=True):
        if len(chosen) >= MAX_SENTENCES:
            break
        fits = used + c.words <= max_words
        # "However, ..." only right after the sentence it answers.
        in_context = not leans_back(c.text) or c.index - 1 in chosen
        whole = _TERMINAL.search(c.text) and not c.truncated
        if fits and in_context and whole and c.words >= MIN_WORDS:
            chosen.add(c.index)
            used += c.words
    return join_sentences([c.text for c in candidates if c.index in chosen])


class ExtractiveSummarizer:
    """The default engine: fast, deterministic, never leaves the article's own words."""

    name = ENGINE

    def __init__(self, max_words: int = 60) -> None:
        if max_words < 1:
            raise ValueError("max_words must be at least 1")
        self.max_words = max_words

    def summarize(self, title: str, html: str, *, language: str | None = None) -> Summary:
        text = clean.to_text(html, title=title)
        lang = detect(text or title, language)
        summary = summarize_text(text, title, self.max_words, lang)
        return Summary(text=summary, language=lang, engine=ENGINE, source_text=text)
