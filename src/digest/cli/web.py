"""digest serve: the subscribers' web front (archive, sign-up, unsubscribe)."""

from __future__ import annotations
