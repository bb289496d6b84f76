"""Signed, URL-safe tokens for unsubscribe / preferences / confirm links (HMAC-SHA256).

A token carries a purpose, the subscriber's random ``token_key`` (never the numeric id) and an
optional expiry: ``<purpose code>.<key>.<expiry epoch or empty>.<base64url HMAC>``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from collections.abc import Mapping
from datetime import UTC, datetime

from digest.errors import ConfigError, ExpiredToken, InvalidToken

#: Same name as ``config.SECRET_ENV`` (this module may import only ``errors`` and the stdlib).
SECRET_ENV = "DIGEST_SECRET"
#: The secret before the last rotation: accepted to verify links and to look up erased
#: addresses, never used to sign anything new (docs/operations.md, "Rotating the secret").
PREVIOUS_SECRET_ENV = "DIGEST_SECRET_PREVIOUS"

PURPOSES: Mapping[str, str] = {
    "unsubscribe": "u",
    "preferences": "p",
    "confirm": "c",
    # An editor's one-time sign-in link to the desk (web/desk.py).
    "desk": "d",
}
_CODES = {code: purpose for purpose, code in PURPOSES.items()}
# The version tag keeps signatures of a future token layout from ever validating this one.
_DOMAIN = b"digest-token-v1\x00"
_KEY = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_SIG = re.compile(r"^[A-Za-z0-9_-]{43}$")


def secret_from_env(environ: Mapping[str, str] | None = None) -> bytes:
    """The signing secret from ``$DIGEST_SECRET``; a ConfigError naming it when unset or empty."""
    env = os.environ if environ is None else environ
    value = env.get(SECRET_ENV, "")
    if not value.strip():
        raise ConfigError(
            f"{SECRET_ENV} is not set: export a long random secret "
            f'(e.g. python -c "import secrets; print(secrets.token_urlsafe(32))")'
        )
    return value.encode("utf-8")


def previous_secret_from_env(environ: Mapping[str, str] | None = None) -> bytes | None:
    """``$DIGEST_SECRET_PREVIOUS`` when set (verification only), else None."""
    env = os.environ if environ is None else environ
    value = env.get(PREVIOUS_SECRET_ENV, "")
    return value.encode("utf-8") if value.strip() else None


def new_token_key() -> str:
    """A fresh random subscriber key: 16 random bytes as 32 hex characters, never starting with
    1 or 3."""
    while True:
        key = os.urandom(16).hex()
        # "1"/"3" + 31 hex digits without a 0 reads as a Bitcoin address to SpamAssassin
        # (PDS_BTC_ID, 1 point) in the unsubscribe link of ~2% of readers' mail.
        if key[0] not in "13":
            return key


def keyed_hash(secret: bytes, value: str, *, purpose: str) -> str:
    """HMAC-SHA256 of ``value`` under ``secret``, separated per ``purpose`` (hex)."""
    msg = purpose.encode("utf-8") + b"\x00" + value.encode("utf-8")
    return hmac.new(secret, msg, hashlib.sha256).hexdigest()


def _sign(secret: bytes, payload: str) -> str:
    mac = hmac.new(secret, _DOMAIN + payload.encode("ascii"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")


def make_token(secret: bytes, purpose: str, key: str, expires: datetime | None = None) -> str:
    """Sign ``key`` for ``purpose`` (unsubscribe, preferences, confirm), optionally expiring."""
    if not secret:
        raise ConfigError(f"{SECRET_ENV} is empty: tokens cannot be signed")
    code = PURPOSES.get(purpose)
    if code is None:
        raise ValueError(f"unknown token purpose {purpose!r} (expected one of {sorted(PURPOSES)})")
    if not _KEY.match(key):
        raise ValueError("token key must be 1-128 URL-safe characters")
    exp = ""
    if expires is not None:
        if expires.tzinfo is None:
            raise ValueError("token expiry must be timezone-aware")
        exp = str(int(expires.timestamp()))
    payload = f"{code}.{key}.{exp}"
    return f"{payload}.{_sign(secret, payload)}"


def read_token(
    secret: bytes, token: str, purpose: str, now: datetime, *, previous: bytes | None = None
) -> str:
    """Verify ``token`` for ``purpose`` at ``now`` and return its key.

    A token signed with ``previous`` (the secret before a rotation) is accepted too, so links
    already in readers' mailboxes keep working. Raises InvalidToken (malformed, tampered, other
    secret, other purpose) or ExpiredToken.
    """
    if purpose not in PURPOSES:
        raise ValueError(f"unknown token purpose {purpose!r}")
    parts = token.strip().split(".")
    if len(parts) != 4 or not _SIG.match(parts[3]):
        raise InvalidToken(f"{purpose} token: malformed")
    code, key, exp, sig = parts
    payload = f"{code}.{key}.{exp}"
    if not payload.isascii():
        raise InvalidToken(f"{purpose} token: malformed")
    # Constant time: a forger learns nothing from how long the comparison took.
    keys = (secret,) if previous is None or previous == secret else (secret, previous)
    if not any(
        hmac.compare_digest(_sign(key, payload).encode("ascii"), sig.encode("ascii"))
        for key in keys
    ):
        raise InvalidToken(f"{purpose} token: signature does not match (altered or not ours)")
    if _CODES.get(code) != purpose:
        raise InvalidToken(f"{purpose} token: this link was made for another purpose")
    if not _KEY.match(key) or (exp and not exp.isdigit()):
        raise InvalidToken(f"{purpose} token: malformed")
    if exp:
        expiry = datetime.fromtimestamp(int(exp), tz=UTC)
        if now >= expiry:
            raise ExpiredToken(f"{purpose} token: expired on {expiry:%Y-%m-%d %H:%M} UTC")
    return key


# VERP: the envelope sender carries which (issue, subscriber) a bounce is about. Lowercase
# letters and digits only (some MTAs fold the case of local parts), short enough for the
# 64-character local-part limit: ``<issue>s<subscriber>-<16 hex of HMAC>``.
_VERP = re.compile(r"^(\d{1,9})s(\d{1,12})-([0-9a-f]{16})$")


def _verp_mac(secret: bytes, issue: int, subscriber_id: int) -> str:
    msg = b"verp\x00" + f"{issue}.{subscriber_id}".encode("ascii")
    return hmac.new(secret, _DOMAIN + msg, hashlib.sha256).hexdigest()[:16]


def verp_token(secret: bytes, issue: int, subscriber_id: int) -> str:
    """The signed token put in the return path for one (issue, subscriber) message."""
    if not secret:
        raise ConfigError(f"{SECRET_ENV} is empty: tokens cannot be signed")
    return f"{issue}s{subscriber_id}-{_verp_mac(secret, issue, subscriber_id)}"


def read_verp_token(secret: bytes, token: str, *, previous: bytes | None = None) -> tuple[int, int]:
    """(issue number, subscriber id) of a return-path token; InvalidToken when not ours.
    As with ``read_token``, one signed with ``previous`` (before a rotation) is ours too: a
    bounce of an issue sent before the rotation still arrives after it."""
    m = _VERP.match(token.strip().lower())
    if not m:
        raise InvalidToken("return-path token: malformed")
    issue, subscriber_id = int(m.group(1)), int(m.group(2))
    keys = (secret,) if previous is None or previous == secret else (secret, previous)
    if not any(
        hmac.compare_digest(
            _verp_mac(key, issue, subscriber_id).encode("ascii"), m.group(3).encode("ascii")
        )
        for key in keys
    ):
        raise InvalidToken("return-path token: signature does not match")
    return issue, subscriber_id
