"""``[render]``: the operator's own templates, looked up before the shipped ones."""

from __future__ import annotations

from pathlib import Path

from pydantic import field_validator

from digest.config.base import _Section


class RenderSection(_Section):
    #: A folder holding any of digest.mjml.j2, digest.txt.j2, _blocks.html.j2, page.html.j2,
    #: page.css; each one found there replaces the shipped one (relative to the working folder).
    templates: str | None = None

    @field_validator("templates")
    @classmethod
    def _folder(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if not Path(v).is_dir():
            raise ValueError(f"{v!r} is not a folder")
        return str(Path(v).resolve())
