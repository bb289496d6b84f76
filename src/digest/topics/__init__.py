"""Editors' topics: folding, the compiled matcher, per-topic selection and evaluation.

Imports only ``models``, ``errors`` and libraries (ahocorasick-rs, simplemma): no config, no store.
"""

from digest.topics.evaluate import (
    EvalReport,
    EvalRow,
    LearnedScorer,
    Misclassified,
    TopicScores,
    check_examples,
    evaluate,
    parse_eval_lines,
    scores,
)
from digest.topics.matcher import TopicMatcher
from digest.topics.select import Candidate, select
from digest.topics.text import expand_term, fold, inflections

__all__ = [
    "Candidate",
    "EvalReport",
    "EvalRow",
    "LearnedScorer",
    "Misclassified",
    "TopicMatcher",
    "TopicScores",
    "check_examples",
    "evaluate",
    "expand_term",
    "fold",
    "inflections",
    "parse_eval_lines",
    "scores",
    "select",
]
