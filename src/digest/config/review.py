"""The ``[review]`` section: whether an editor must approve each issue before it goes out, who
may, and when the daemon builds the draft and what it does at the send time without approval.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from digest.config.base import Crontab, Duration, _Section


class ReviewSection(_Section):
    #: "auto": send what the filter kept (the default); "required": only an approved draft.
    mode: Literal["auto", "required"] = "auto"
    #: Who may open the desk and approve; empty: the desk is used from the command line only.
    editors: list[str] = Field(default_factory=list)
    #: Crontab (daemon): build the draft and mail each editor a link to it.
    draft: Crontab | None = None
    #: At the send time with no approval: "hold" (send nothing, remind once) or "send".
    on_deadline: Literal["hold", "send"] = "hold"
    #: Near misses: items scoring at least this fraction of a topic's threshold.
    floor: float = Field(default=0.5, ge=0.0, le=1.0)
    #: An issue waiting for approval longer than this makes /healthz degraded.
    alert_after: Duration = Duration.parse("24h")

    @field_validator("editors")
    @classmethod
    def _editors(cls, v: list[str]) -> list[str]:
        from email_validator import EmailNotValidError, validate_email

        out: list[str] = []
        for address in v:
            try:
                checked = validate_email(address, check_deliverability=False)
            except EmailNotValidError as exc:
                raise ValueError(f"{address!r} is not an email address: {exc}") from None
            normal = checked.normalized.lower()
            if normal not in out:
                out.append(normal)
        return out

    @field_validator("alert_after")
    @classmethod
    def _alert_after(cls, v: Duration) -> Duration:
        if v.seconds <= 0:
            raise ValueError(f"expected a positive duration, got {v.text!r}")
        return v

    @property
    def required(self) -> bool:
        return self.mode == "required"

    @property
    def alert_after_seconds(self) -> float:
        return self.alert_after.seconds

    def is_editor(self, address: str) -> bool:
        return address.strip().lower() in self.editors
