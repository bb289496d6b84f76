"""digest summarize: show the cleaned text and summary of one article."""

from __future__ import annotations
