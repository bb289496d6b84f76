"""Outside text made storable: no NUL, control characters or lone surrogates (PostgreSQL and
the SQLite driver refuse them), and no more characters than the column holds.
"""

from __future__ import annotations

import re

__all__ = ["fit", "fit_optional"]

# C0 controls but tab, newline and carriage return; DEL; C1 controls; lone UTF-16 surrogates.
_UNSTORABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def fit(value: str, limit: int | None = None) -> str:
    """``value`` without unstorable characters, cut to ``limit`` characters when given."""
    clean = _UNSTORABLE.sub("", value)
    return clean[:limit] if limit is not None else clean


def fit_optional(value: str | None, limit: int | None = None) -> str | None:
    """``fit`` for nullable columns: None stays None, and so does text that cleans to nothing."""
    if value is None:
        return None
    return fit(value, limit) or None
