"""Case-sensitive terms: acronyms ("ICO", "CNIL") and ``case:`` terms match only as written."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from digest.models import Term, TopicDef, TopicMatch
from digest.topics import TopicMatcher


def matcher(*terms: str, **kw: object) -> TopicMatcher:
    tdef = TopicDef(id="t", title="T", include=tuple(Term(t) for t in terms), **kw)  # type: ignore[arg-type]
    return TopicMatcher([tdef])


def one(m: TopicMatcher, title: str, text: str = "") -> TopicMatch:
    return m.match(title, text)[0]


def test_an_acronym_term_matches_the_acronym_in_capitals() -> None:
    result = one(matcher("ICO"), "The ICO fines a retailer", "")
    assert [(h.term, h.where) for h in result.hits] == [("ICO", "title")]


def test_an_acronym_term_does_not_match_the_same_letters_in_lowercase() -> None:
    m = matcher("ICO")
    assert not one(m, "Le favicon.ico expliqué", "Un fichier .ico par site, ico partout").hits


def test_an_acronym_term_matches_on_word_boundaries_only() -> None:
    assert not one(matcher("ICO"), "PICO-8 and ICONS", "").hits


def test_a_long_acronym_also_matches_capitalized_as_the_french_press_writes_it() -> None:
    m = matcher("CNIL")
    assert one(m, "La Cnil met en demeure un hôpital").hits
    assert one(m, "Les CNILs européennes").hits
    assert not one(m, "cnil en minuscules").hits


def test_a_short_acronym_takes_no_plural_and_no_capitalized_form() -> None:
    m = matcher("ICO")
    assert not one(m, "ICOs are back in crypto").hits
    assert not one(m, "Ico, a classic game").hits


def test_a_case_prefix_makes_any_term_case_sensitive() -> None:
    m = matcher("case:Bleu")
    assert one(m, "Bleu obtient sa qualification").hits
    assert not one(m, "Un ciel bleu sur Paris").hits


def test_a_case_phrase_matches_across_punctuation() -> None:
    m = matcher("case:Garante della privacy")
    assert one(m, "Il Garante della privacy multa un'azienda").hits
    assert not one(m, "Apucarana garante continuidade do programa").hits


def test_a_title_in_capitals_counts_an_acronym_only_when_the_text_confirms_it() -> None:
    m = matcher("ICO")
    shouting = "FAVICON.ICO: EVERYTHING YOU NEED TO KNOW"
    assert not one(m, shouting, "How browsers pick an icon for a tab.").hits
    confirmed = one(m, "ICO FINES BRITISH AIRWAYS", "The ICO said the airline failed.")
    assert {h.where for h in confirmed.hits} == {"title", "text"}


def test_acronyms_still_score_and_decide_like_other_terms() -> None:
    m = TopicMatcher([TopicDef(id="t", title="T", include=(Term("GDPR", 3.0),), threshold=3.0)])
    assert one(m, "News", "A GDPR complaint was filed.").kept
    assert not one(m, "News", "gdpr in a url").kept


@given(st.text(max_size=200))
def test_a_case_sensitive_term_never_matches_lowercase_text(text: str) -> None:
    m = matcher("ICO", "CNIL", "case:Garante")
    assert not one(m, text.lower(), text.lower()).hits


def test_an_acronym_and_its_plural_count_as_one_term() -> None:
    result = one(matcher("CNIL"), "News", "La CNIL et les CNILs européennes ; la CNIL encore.")
    (hit,) = result.hits
    assert hit.count == 3
