"""The web front's small parts: language negotiation, CSRF tokens, sign-up bookkeeping, Atom."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from xml.etree import ElementTree as ET

from hypothesis import given
from hypothesis import strategies as st

from digest.store import open_store, signups
from digest.web.feed import FeedEntry, atom_feed
from digest.web.i18n import LANGUAGES, Translator, choose_language
from digest.web.security import _cookie_from_scope, csrf_token, csrf_valid
from test_web_helpers import NOW, SECRET, add_active

# --------------------------------------------------------------------------- language


def test_query_wins_then_accept_language_by_quality_then_default() -> None:
    assert choose_language("fr", "en", "en") == ("fr", True)
    assert choose_language(None, "en;q=0.4, fr-CA;q=0.8", "en") == ("fr", False)
    assert choose_language(None, "de, fr;q=0.1", "en") == ("fr", False)
    assert choose_language(None, "de, fr;q=0", "fr") == ("fr", False)
    assert choose_language("xx", None, "fr") == ("fr", False)


@given(st.one_of(st.none(), st.text()), st.one_of(st.none(), st.text()))
def test_any_request_gets_a_supported_language(query: str | None, header: str | None) -> None:
    language, _ = choose_language(query, header, "en")
    assert language in LANGUAGES


def test_plurals_follow_each_language() -> None:
    assert Translator("en").plural("items_count", 0) == "0 articles"
    assert Translator("fr").plural("items_count", 0) == "0 article"
    assert Translator("fr").plural("hours", 48) == "48 heures"


# --------------------------------------------------------------------------- CSRF


@given(st.text(max_size=300))
def test_any_cookie_header_is_read_without_error(header: str) -> None:
    scope = {"headers": [(b"cookie", header.encode("utf-8", "surrogatepass"))]}
    value = _cookie_from_scope(scope)
    assert value is None or 20 <= len(value) <= 100


def test_csrf_token_is_bound_to_the_cookie_and_the_secret() -> None:
    cookie = "c" * 43
    token = csrf_token(SECRET, cookie)
    assert csrf_valid(SECRET, cookie, token)
    assert not csrf_valid(SECRET, "d" * 43, token)
    assert not csrf_valid(b"another secret", cookie, token)
    assert not csrf_valid(SECRET, None, token)
    assert not csrf_valid(SECRET, cookie, "")


# --------------------------------------------------------------------------- sign-up bookkeeping


def test_a_confirmation_is_claimed_once_per_interval_and_can_be_released(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/d.db")
    reader = add_active(store)
    hour = timedelta(hours=1)
    with store.begin() as conn:
        stamp = signups.claim_confirmation(conn, reader.id, NOW, interval=hour)
        assert stamp == NOW
        assert (
            signups.claim_confirmation(
                conn, reader.id, NOW + 59 * timedelta(minutes=1), interval=hour
            )
            is None
        )
        assert signups.confirm_sent_at(conn, reader.id) == NOW
        signups.release_confirmation(conn, reader.id, NOW)
        assert signups.confirm_sent_at(conn, reader.id) is None
        assert signups.claim_confirmation(conn, reader.id, NOW + hour, interval=hour) is not None
    store.close()


def test_attempts_count_over_a_sliding_window_and_old_ones_are_pruned(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/d.db")
    hour, step = timedelta(hours=1), timedelta(minutes=10)
    with store.begin() as conn:
        results = [
            signups.attempt_allowed(conn, "ip", NOW + i * step, limit=3, window=hour)
            for i in range(5)
        ]
        assert results == [True, True, True, False, False]
        assert signups.attempt_allowed(conn, "other-ip", NOW, limit=3, window=hour)
        assert signups.prune_attempts(conn, NOW + timedelta(minutes=15)) == 3
        assert signups.count_attempts(conn, "ip", NOW) == 3
    store.close()


# --------------------------------------------------------------------------- Atom


@given(st.text(), st.text())
def test_feed_is_well_formed_whatever_the_titles(title: str, summary: str) -> None:
    clean = "".join(c for c in title + summary if c.isprintable() or c in "\n\t")
    body = atom_feed(
        title=clean or "t",
        root_url="https://digest.example",
        entries=[FeedEntry(1, clean, NOW, clean)],
        language="fr",
    )
    root = ET.fromstring(body)
    assert root.tag == "{http://www.w3.org/2005/Atom}feed"
