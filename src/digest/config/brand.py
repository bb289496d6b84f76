"""``[brand]``: the operator's look without touching a template (name, logo, accent colour,
footer text) and who sends the list, from where (``postal_address``)."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from digest.config.base import _Section
from digest.models import Brand

_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")


class BrandSection(_Section):
    #: Who sends the list, as the footer names it (default: the digest's title).
    name: str | None = None
    #: An https URL of the logo (emails load nothing else), with its alt text and size in px.
    logo_url: str | None = None
    logo_alt: str = ""
    logo_width: int = Field(default=120, ge=16, le=600)
    logo_height: int = Field(default=40, ge=16, le=300)
    #: Accent colour (links, headings rules) as #rrggbb.
    accent: str = "#0b57d0"
    #: One short paragraph added to the footer.
    footer: str | None = None
    #: The sender's postal address, printed in the footer (CAN-SPAM; most providers expect it).
    postal_address: str | None = None

    @field_validator("logo_url")
    @classmethod
    def _https(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith("https://"):
            raise ValueError("must be an https:// URL (mail clients block the rest)")
        return v

    @field_validator("accent")
    @classmethod
    def _colour(cls, v: str) -> str:
        if not _COLOUR.match(v):
            raise ValueError("expected a colour as #rrggbb")
        return v.lower()

    def to_model(self) -> Brand:
        return Brand(
            name=self.name,
            logo_url=self.logo_url,
            logo_alt=self.logo_alt,
            logo_width=self.logo_width,
            logo_height=self.logo_height,
            accent=self.accent,
            footer=self.footer,
            postal_address=self.postal_address,
        )
