"""fetch, preview, send, run, check: the everyday commands."""

from __future__ import annotations
