"""Folding and term expansion: the normalizer every topic term and item goes through."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from digest.topics import expand_term, fold, inflections
from digest.topics.text import _fold_unicode, fold_bytes

ANY_TEXT = st.text(alphabet=st.characters(blacklist_categories=()), max_size=200)
# The characters of French and English news: Latin-1, typographic punctuation, ligatures.
NEWS_TEXT = st.text(
    alphabet=st.sampled_from(
        [chr(c) for c in range(32, 256)]
        + list("’‘“”«»–—…œŒæßµ€\u202f\u2009\n\t  ")
        + ["\u0301", "İ", "ℌ", "ﬁ", "日"]
    ),
    max_size=120,
)


def test_fold_lowercases_and_strips_accents() -> None:
    assert fold("Données PERSONNELLES à l'État") == "donnees personnelles a l etat"


def test_fold_splits_elisions_and_hyphens_into_words() -> None:
    assert fold("L’hébergeur du Cloud-Act") == "l hebergeur du cloud act"
    assert fold("l'hébergement") == "l hebergement"


def test_fold_turns_punctuation_and_space_runs_into_single_spaces() -> None:
    assert fold("  «CNIL» :  RGPD,\n\tnoyb…  ") == "cnil rgpd noyb"


def test_fold_expands_ligatures() -> None:
    assert fold("Œuvre, cœur, Straße") == "oeuvre coeur strasse"


def test_fold_keeps_letters_of_other_scripts() -> None:
    assert fold("Привет, 世界!") == "привет 世界"


def test_fold_of_decomposed_accents_equals_fold_of_composed_ones() -> None:
    assert fold("he\u0301berge\u0301") == fold("hébergé") == "heberge"


@settings(max_examples=300)
@given(ANY_TEXT)
def test_fold_never_raises_and_is_idempotent(text: str) -> None:
    once = fold(text)
    assert fold(once) == once


@settings(max_examples=300)
@given(NEWS_TEXT)
def test_fast_path_folds_exactly_like_the_general_path(text: str) -> None:
    assert fold(text) == _fold_unicode(text)


@settings(max_examples=200)
@given(NEWS_TEXT)
def test_aligned_fold_keeps_every_character_in_place(text: str) -> None:
    folded, aligned = fold_bytes(text)
    if aligned:
        assert len(folded) == len(text)
    assert " ".join(folded.decode("utf-8").split()) == fold(text)


def test_inflections_share_the_lemma_in_french_and_english() -> None:
    assert {"donnee", "donnees"} <= {fold(f) for f in inflections("donnée")}
    assert {"personnel", "personnelle", "personnelles"} <= set(inflections("personnelle"))
    assert {"breach", "breaches", "breached"} <= set(inflections("breach"))
    assert "hébergement" not in inflections("hébergé")


def test_short_words_are_not_inflected() -> None:
    assert inflections("des") == ("des",)
    assert inflections("act") == ("act",)


def test_phrase_expansion_covers_every_inflected_combination() -> None:
    forms = {f for f, _ in expand_term("donnée personnelle")}
    assert {"donnee personnelle", "donnees personnelles"} <= forms


def test_a_trailing_star_makes_a_prefix_term() -> None:
    assert expand_term("héberg*") == (("heberg", True),)


def test_exact_terms_are_not_inflected() -> None:
    assert expand_term("Bleu", inflect=False) == (("bleu", False),)
