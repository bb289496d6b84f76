"""Signed link tokens: round-trip, and refusal of anything tampered, expired or misused."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from digest import config
from digest.errors import ConfigError, ExpiredToken, InvalidToken, TokenError, UsageError
from digest.tokens import (
    SECRET_ENV,
    keyed_hash,
    make_token,
    new_token_key,
    read_token,
    secret_from_env,
)

SECRET = b"a-long-test-secret-of-some-32-bytes!"
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
KEY = "0123456789abcdef0123456789abcdef"


def test_a_token_reads_back_to_its_key() -> None:
    token = make_token(SECRET, "unsubscribe", KEY)
    assert read_token(SECRET, token, "unsubscribe", NOW) == KEY


def test_tokens_are_url_safe_and_carry_no_numeric_id() -> None:
    token = make_token(SECRET, "preferences", KEY, NOW + timedelta(days=1))
    assert all(c.isalnum() or c in "-_." for c in token)
    assert KEY in token  # the random key, nothing else identifying


@given(st.integers(min_value=0, max_value=200), st.characters(codec="ascii"))
def test_any_altered_character_is_refused(pos: int, replacement: str) -> None:
    token = make_token(SECRET, "unsubscribe", KEY)
    i = pos % len(token)
    if token[i] == replacement:
        return
    forged = token[:i] + replacement + token[i + 1 :]
    with pytest.raises(TokenError):
        read_token(SECRET, forged, "unsubscribe", NOW)


def test_a_token_signed_with_another_secret_is_refused() -> None:
    token = make_token(b"another secret entirely", "unsubscribe", KEY)
    with pytest.raises(InvalidToken, match="signature"):
        read_token(SECRET, token, "unsubscribe", NOW)


def test_a_token_for_another_purpose_is_refused() -> None:
    token = make_token(SECRET, "confirm", KEY)
    with pytest.raises(InvalidToken, match="another purpose"):
        read_token(SECRET, token, "unsubscribe", NOW)


def test_swapping_the_purpose_code_breaks_the_signature() -> None:
    token = make_token(SECRET, "confirm", KEY)
    with pytest.raises(InvalidToken, match="signature"):
        read_token(SECRET, "u" + token[1:], "unsubscribe", NOW)


def test_an_expired_token_is_refused_and_a_fresh_one_accepted() -> None:
    token = make_token(SECRET, "confirm", KEY, NOW + timedelta(hours=48))
    assert read_token(SECRET, token, "confirm", NOW + timedelta(hours=47)) == KEY
    with pytest.raises(ExpiredToken, match="expired"):
        read_token(SECRET, token, "confirm", NOW + timedelta(hours=48))


@pytest.mark.parametrize("junk", ["", "abc", "u.x.y", "u..." + "A" * 43, "ü.k..." + "A" * 42])
def test_malformed_tokens_are_usage_errors(junk: str) -> None:
    with pytest.raises(UsageError):
        read_token(SECRET, junk, "unsubscribe", NOW)


def test_missing_secret_is_a_config_error_naming_the_variable() -> None:
    assert config.SECRET_ENV == SECRET_ENV
    with pytest.raises(ConfigError, match="DIGEST_SECRET"):
        secret_from_env({})
    assert secret_from_env({"DIGEST_SECRET": "s3cret"}) == b"s3cret"


def test_token_keys_are_random_hex() -> None:
    a, b = new_token_key(), new_token_key()
    assert a != b
    assert len(a) == 32
    assert set(a) <= set("0123456789abcdef")


# SpamAssassin's __BITCOIN_ID body rule (72_active.cf), its first alternative.
_BITCOIN_ID = re.compile(r"\b(?<!=)[13][a-km-zA-HJ-NP-Z1-9]{29,34}\b")


def test_token_keys_never_make_an_unsubscribe_link_read_as_a_bitcoin_address() -> None:
    # A key like "3d3496f3...": ~2% of random keys did, scoring the reader's mail 1 point.
    keys = [new_token_key() for _ in range(2000)]
    assert not [k for k in keys if _BITCOIN_ID.search(f"u.{k}..")]


def test_keyed_hashes_depend_on_secret_and_purpose() -> None:
    h = keyed_hash(SECRET, "ann@example.org", purpose="erased")
    assert h == keyed_hash(SECRET, "ann@example.org", purpose="erased")
    assert h != keyed_hash(b"other", "ann@example.org", purpose="erased")
    assert h != keyed_hash(SECRET, "ann@example.org", purpose="message-id")
