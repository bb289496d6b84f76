"""Editors' ``regex:`` terms run under RE2 (google-re2): time linear in the text, whatever the
pattern, so a pattern like ``(a+)+$`` cannot freeze a fetch. Patterns RE2 cannot take are
refused with the topic and term named.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, Protocol, cast

import re2  # type: ignore[import-untyped]

from digest.errors import ConfigError

__all__ = ["Regex", "compile_term"]

_OPTIONS = re2.Options()
# RE2 writes parse errors to stderr through absl; ours are reported as ConfigError instead.
_OPTIONS.log_errors = False


class Regex(Protocol):
    """What the matcher needs of a compiled pattern (``re.Pattern`` and RE2's alike)."""

    @property
    def pattern(self) -> str: ...

    def search(self, text: str) -> Any: ...

    def finditer(self, text: str) -> Iterator[Any]: ...


def compile_term(body: str, where: str) -> Regex:
    """An editor's pattern compiled by RE2; ``ConfigError`` naming ``where`` when it cannot be."""
    try:
        return cast(Regex, re2.compile(body, _OPTIONS))
    except re2.error as exc:
        raw = exc.args[0] if exc.args else ""
        detail = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        hint = ""
        if re.search(r"\(\?<?[=!]|\\[1-9]", body):
            hint = " (lookarounds and back-references are not available: they can take time "
            hint += "exponential in the text)"
        raise ConfigError(
            f"{where}: regex {body!r} is not accepted by the linear-time engine (RE2): "
            f"{detail}{hint}"
        ) from None
