"""How issues leave: ``[delivery]``, ``[smtp]`` and ``[dkim]``."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from digest.config.base import _Section


class DeliverySection(_Section):
    mode: Literal["smtp", "outbox"] = "outbox"
    from_: str = Field(default="Digest <digest@localhost>", alias="from")
    reply_to: str | None = None
    outbox_dir: str = "outbox"
    subject: str = "{title} #{number} — {date}"
    #: List-Id domain part; defaults to the From domain.
    list_id: str | None = None
    #: A subscriber whose last N deliveries all failed for good is marked ``bounced``.
    bounce_after: int = Field(default=3, ge=1, le=100)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("subject")
    @classmethod
    def _subject(cls, v: str) -> str:
        try:
            v.format(title="t", number=1, date="d")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"subject may only use {{title}}, {{number}} and {{date}}: {exc}"
            ) from None
        return v


class SMTPSection(_Section):
    host: str = "localhost"
    port: int = Field(default=587, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    #: Name of the environment variable holding the password (never the password itself).
    password_env: str | None = "DIGEST_SMTP_PASSWORD"
    timeout: float = Field(default=30.0, gt=0)
    connections: int = Field(default=2, ge=1, le=64)
    rate_per_second: float | None = Field(default=None, gt=0)
    max_attempts: int = Field(default=5, ge=1, le=50)
    ca_file: str | None = None

    def password(self) -> str | None:
        return os.environ.get(self.password_env) if self.password_env else None


class DKIMSection(_Section):
    selector: str
    domain: str
    #: Path of the PEM private key (outside the repository), or ...
    key_file: str | None = None
    #: ... the environment variable that holds the PEM.
    key_env: str | None = None

    @model_validator(mode="after")
    def _one_key(self) -> DKIMSection:
        if not self.key_file and not self.key_env:
            raise ValueError("set key_file or key_env")
        return self
