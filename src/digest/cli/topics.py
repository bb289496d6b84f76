"""Editors' topic tools: topics eval, topics test, explain."""

from __future__ import annotations
