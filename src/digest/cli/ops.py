"""Operators' commands: status, feeds import/export (OPML)."""

from __future__ import annotations
