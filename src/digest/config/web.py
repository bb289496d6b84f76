"""The ``[web]`` section (`digest serve`: sign-up, confirmation, unsubscribe)."""

from __future__ import annotations

from pydantic import Field, field_validator

from digest.config.base import Duration, _Section


class WebSection(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    #: How long a sign-up confirmation link stays valid.
    confirm_ttl: Duration = Duration.parse("48h")
    signups_per_ip_per_hour: int = Field(default=20, ge=1)

    @field_validator("confirm_ttl")
    @classmethod
    def _positive(cls, v: Duration) -> Duration:
        # A link valid for no time at all would make every sign-up fail.
        if v.seconds <= 0:
            raise ValueError(f"expected a positive duration, got {v.text!r}")
        return v
