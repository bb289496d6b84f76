"""What ``digest check`` judges beyond the file itself: the secrets and the SMTP credentials in
the environment. Errors would fail (or weaken) a later run; warnings are worth a look.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from digest.config.loader import SECRET_ENV, Settings

PREVIOUS_SECRET_ENV = "DIGEST_SECRET_PREVIOUS"
#: Below this a secret cannot be a random one (``secrets.token_urlsafe(32)`` gives 43): error.
MIN_SECRET = 16
#: Below this it is guessable in time by someone holding a token or an erased hash: warning.
GOOD_SECRET = 32
_LOOPBACK = {"localhost", "127.0.0.1", "::1"}


@dataclass
class Findings:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def environment_findings(settings: Settings, environ: Mapping[str, str] | None = None) -> Findings:
    """Secrets and credentials as the commands would find them in ``environ``."""
    env = os.environ if environ is None else environ
    found = Findings()
    secret = env.get(SECRET_ENV, "")
    if not secret.strip():
        # Not an error: check may run where the secrets are not (an editor's laptop, CI).
        found.warnings.append(
            f"{SECRET_ENV} is not set: send, serve and the subscriber commands need it"
        )
    else:
        _judge_secret(SECRET_ENV, secret, found)
    previous = env.get(PREVIOUS_SECRET_ENV, "")
    if previous.strip():
        if previous == secret:
            found.warnings.append(
                f"{PREVIOUS_SECRET_ENV} is the same as {SECRET_ENV}: it has no effect"
            )
        else:
            _judge_secret(PREVIOUS_SECRET_ENV, previous, found)
    s = settings.smtp
    if settings.delivery.mode == "smtp" and s.ca_file:
        try:
            ssl.create_default_context(cafile=s.ca_file)
        except (OSError, ssl.SSLError) as exc:
            found.errors.append(f"smtp.ca_file: cannot load {s.ca_file}: {exc}")
    if settings.delivery.mode == "outbox":
        problem = _not_writable(Path(settings.delivery.outbox_dir))
        if problem:
            found.errors.append(f"delivery.outbox_dir: {problem}")
    problem = _not_writable(Path(settings.storage.cache_dir))
    if problem:
        # Nothing fails: every command then compiles the topics the long way (~0.4 s of CPU).
        found.warnings.append(f"storage.cache_dir: {problem}: the topics' word forms go uncached")
    if settings.delivery.mode == "smtp" and s.username:
        if s.security == "none" and s.host.lower() not in _LOOPBACK:
            found.warnings.append(
                f'smtp.security = "none" with smtp.username: the password goes to {s.host} '
                'in clear text; use "starttls" or "tls"'
            )
        if not s.password_env:
            found.errors.append("smtp.password_env: not set, but smtp.username is")
        elif not env.get(s.password_env):
            found.warnings.append(
                f"smtp.password_env: ${s.password_env} is not set here (smtp.username is): "
                "sending will stop until it is"
            )
    return found


def _not_writable(folder: Path) -> str | None:
    """Why ``folder`` could not be written to (created if missing), or None; creates nothing."""
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        return f"{probe} is not a folder"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"{probe} is not writable by this user"
    return None


def _judge_secret(name: str, value: str, found: Findings) -> None:
    length = len(value.encode("utf-8"))
    hint = 'make one with: python -c "import secrets; print(secrets.token_urlsafe(32))"'
    if length < MIN_SECRET:
        found.errors.append(
            f"{name} is {length} byte(s) long: at least {MIN_SECRET} are required, "
            f"{GOOD_SECRET} or more advised; {hint}"
        )
    elif length < GOOD_SECRET:
        found.warnings.append(f"{name} is {length} bytes long: {GOOD_SECRET} or more advised")
