"""DKIM signing (RSA-SHA256, relaxed/relaxed) of wire-form messages with dkimpy.

The key comes from a PEM file outside the repository or from an environment variable.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import dkim

from digest.errors import ConfigError, FatalDeliveryError

#: Headers covered by the signature (those present in the message).
SIGNED_HEADERS: tuple[str, ...] = (
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "Reply-To",
    "MIME-Version",
    "Content-Type",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
)


def load_key(key_file: str | None, key_env: str | None) -> bytes:
    """The PEM private key from ``key_file`` or the variable named ``key_env``."""
    if key_file:
        try:
            return Path(key_file).expanduser().read_bytes()
        except OSError as exc:
            raise ConfigError(f"dkim.key_file: cannot read {key_file}: {exc.strerror}") from None
    if key_env:
        value = os.environ.get(key_env, "")
        if not value.strip():
            raise ConfigError(f"dkim.key_env: ${key_env} is not set")
        return value.replace("\\n", "\n").encode("ascii", "replace")
    raise ConfigError("dkim: set key_file or key_env")


class DKIMSigner:
    """Prepends a DKIM-Signature header to wire-form messages."""

    def __init__(
        self,
        selector: str,
        domain: str,
        private_key: bytes,
        headers: Sequence[str] = SIGNED_HEADERS,
    ) -> None:
        self.selector = selector.encode("ascii")
        self.domain = domain.encode("ascii")
        self.key = private_key
        self.headers = [h.encode("ascii") for h in headers]
        # Fail at start-up, not on the first recipient, when the key is unusable.
        self.sign(b"From: a@b.example\r\nTo: c@d.example\r\nSubject: t\r\n\r\nbody\r\n")

    def sign(self, message: bytes) -> bytes:
        try:
            header = dkim.sign(
                message,
                self.selector,
                self.domain,
                self.key,
                canonicalize=(b"relaxed", b"relaxed"),
                include_headers=self.headers,
                signature_algorithm=b"rsa-sha256",
            )
        except (dkim.DKIMException, ValueError, IndexError) as exc:
            raise FatalDeliveryError(f"dkim: cannot sign with the configured key: {exc}") from exc
        return bytes(header) + message
