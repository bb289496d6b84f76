"""How issues leave: ``[delivery]``, ``[smtp]`` and ``[dkim]``."""

from __future__ import annotations

import os
import re
from typing import Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from digest.config.base import _Section, check_subject_format, header_safe

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")


def check_address(value: str, *, envelope: bool) -> str:
    """One mail address, bare or ``Name <user@example.org>``; ``envelope``: it is also the
    SMTP sender, so it must be ASCII (no SMTPUTF8 is asked for on MAIL FROM)."""
    from email.utils import getaddresses

    from email_validator import EmailNotValidError, validate_email

    header_safe(value)
    found = [addr for _, addr in getaddresses([value]) if addr]
    if len(found) != 1 or "@" not in found[0]:
        raise ValueError(
            f"{value!r} is not an email address "
            "(expected 'user@example.org' or 'Name <user@example.org>')"
        )
    local, _, domain = found[0].rpartition("@")
    try:
        # The local part by email-validator's rules; the domain apart, so that a relay's own
        # name (``digest@localhost``, an intranet host) is allowed as it always was.
        validate_email(
            f"{local}@example.org", check_deliverability=False, allow_smtputf8=not envelope
        )
        ascii_domain = domain.encode("idna").decode("ascii")
    except (EmailNotValidError, UnicodeError) as exc:
        raise ValueError(f"{value!r} is not a usable email address: {exc}") from None
    if not _HOSTNAME.fullmatch(ascii_domain) or (envelope and not domain.isascii()):
        raise ValueError(f"{value!r} is not a usable email address: bad domain {domain!r}")
    return value


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
    #: VERP envelope sender, e.g. "bounces+{token}@example.org": each message's bounces come
    #: back to an address naming its issue and subscriber (signed). Default: the From address.
    return_path: str | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("subject")
    @classmethod
    def _subject(cls, v: str) -> str:
        return check_subject_format(v)

    @field_validator("from_")
    @classmethod
    def _from(cls, v: str) -> str:
        return check_address(v, envelope=True)

    @field_validator("reply_to")
    @classmethod
    def _reply_to(cls, v: str | None) -> str | None:
        return None if v is None else check_address(v, envelope=False)

    @field_validator("list_id")
    @classmethod
    def _list_id(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?", v):
            raise ValueError(f"expected a domain like 'news.example.org', got {v!r}")
        return v

    @field_validator("return_path")
    @classmethod
    def _return_path(cls, v: str | None) -> str | None:
        if v is None:
            return v
        local, at, domain = v.rpartition("@")
        if not at or not domain or "{token}" not in local or local.count("{token}") != 1:
            raise ValueError(
                "expected an address with {token} in its local part, "
                'e.g. "bounces+{token}@example.org"'
            )
        if any(c in v for c in ' <>\r\n"') or len(local.replace("{token}", "x" * 30)) > 64:
            raise ValueError("not a plain address, or its local part would exceed 64 characters")
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
