"""``[bounces]``: the IMAP mailbox bounces and complaints are read from; the soft-bounce rule."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import Field, model_validator

from digest.config.base import Duration, _Section


class BouncesSection(_Section):
    #: IMAP server of the mailbox that receives bounces (the return path's, or the From's).
    host: str | None = None
    port: int = Field(default=993, ge=1, le=65535)
    #: "tls" (IMAPS, port 993), "starttls" (port 143) or "none" (loopback only).
    security: Literal["starttls", "tls", "none"] = "tls"
    username: str | None = None
    #: Name of the environment variable holding the password (never the password itself).
    password_env: str | None = "DIGEST_BOUNCES_PASSWORD"
    folder: str = "INBOX"
    #: What happens to a message once processed: moved to ``processed_folder``, or deleted.
    after: Literal["move", "delete"] = "move"
    processed_folder: str = "Processed"
    timeout: float = Field(default=30.0, gt=0)
    ca_file: str | None = None
    #: How often the daemon polls the mailbox (when ``host`` is set).
    poll_every: Duration = Duration.parse("10m")
    #: A subscriber is marked bounced after this many soft bounces ...
    soft_limit: int = Field(default=3, ge=1, le=100)
    #: ... within this window.
    soft_window: Duration = Duration.parse("30d")
    #: At most this many messages per poll (the rest wait for the next one).
    batch: int = Field(default=500, ge=1, le=100000)

    @model_validator(mode="after")
    def _login(self) -> BouncesSection:
        if self.host and not self.username:
            raise ValueError("username is required when host is set")
        return self

    def password(self) -> str | None:
        return os.environ.get(self.password_env) if self.password_env else None
