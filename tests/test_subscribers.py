"""Subscribers: validated, unique whatever the case, imported from CSV, exported and erased."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from digest.errors import UsageError
from digest.models import SubscriberStatus
from digest.store import Store, open_store, schema
from digest.store import subscribers as subs
from digest.store import subscribers_csv as csvimp

SECRET = b"test-secret-for-subscribers-0123456789"
NOW = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


@pytest.fixture
def store(db_url: str) -> Store:
    return open_store(db_url)


def write_csv(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "people.csv"
    p.write_text(text, encoding="utf-8")
    return p


def test_added_subscriber_gets_a_random_token_key_and_is_found_whatever_the_case(
    store: Store,
) -> None:
    with store.begin() as conn:
        rec = subs.add_subscriber(conn, "Ann.Lee@Example.ORG", name="Ann", now=NOW)
        assert rec.email == "Ann.Lee@example.org"
        assert len(rec.token_key) == 32
        assert rec.token_key != str(rec.id)
        assert subs.get_by_email(conn, "ann.lee@EXAMPLE.org") == rec
        assert subs.get_by_token_key(conn, rec.token_key) == rec
        assert rec.confirmed_at == NOW


def test_adding_the_same_person_in_another_case_is_refused(store: Store) -> None:
    with store.begin() as conn:
        subs.add_subscriber(conn, "bob@example.org")
        with pytest.raises(UsageError, match="already a subscriber"):
            subs.add_subscriber(conn, "BOB@example.org")


def test_invalid_address_is_named(store: Store) -> None:
    with store.begin() as conn, pytest.raises(UsageError, match="'bob@' is not a valid"):
        subs.add_subscriber(conn, "bob@")


def test_csv_import_reads_name_topics_and_language(store: Store, tmp_path: Path) -> None:
    path = write_csv(
        tmp_path,
        "email,name,topics,language\n"
        "ann@example.org,Ann,sovereign_cloud; data_protection,fr\n"
        "bob@example.org,,,\n",
    )
    with store.begin() as conn:
        report = csvimp.import_csv(
            conn, path, secret=SECRET, known_topics={"sovereign_cloud", "data_protection"}
        )
        assert report.added == 2
        ann = subs.get_by_email(conn, "ann@example.org")
        bob = subs.get_by_email(conn, "bob@example.org")
    assert ann is not None
    assert bob is not None
    assert ann.topics == ("sovereign_cloud", "data_protection")
    assert ann.language == "fr"
    assert ann.name == "Ann"
    assert (bob.topics, bob.language, bob.name) == ((), None, None)


def test_csv_bad_address_is_refused_on_its_line_and_the_good_rows_are_imported(
    store: Store, tmp_path: Path
) -> None:
    path = write_csv(tmp_path, "email\nann@example.org\n\nnot-an-address\nbob@example.org\n")
    with store.begin() as conn:
        report = csvimp.import_csv(conn, path, secret=SECRET)
    assert (report.added, report.refused) == (2, 1)
    assert len(report.lines) == 1
    assert re.match(r".*people\.csv:4: 'not-an-address' is not a valid", report.lines[0])
    with store.connect() as conn:
        emails = [s.email for s in subs.list_subscribers(conn)]
    assert emails == ["ann@example.org", "bob@example.org"]


def test_csv_without_email_column_is_refused(store: Store, tmp_path: Path) -> None:
    path = write_csv(tmp_path, "mail,name\nann@example.org,Ann\n")
    with store.begin() as conn, pytest.raises(UsageError, match="no 'email' column"):
        csvimp.import_csv(conn, path, secret=SECRET)


def test_csv_unknown_topic_is_refused_on_its_line(store: Store, tmp_path: Path) -> None:
    path = write_csv(tmp_path, "email,topics\nann@example.org,cooking\nbob@example.org,\n")
    with store.begin() as conn:
        report = csvimp.import_csv(conn, path, secret=SECRET, known_topics={"data_protection"})
    assert (report.added, report.refused) == (1, 1)
    assert ":2: unknown topic 'cooking'" in report.lines[0]


def test_csv_duplicates_in_another_case_are_imported_once_and_refused_naming_the_first(
    store: Store, tmp_path: Path
) -> None:
    path = write_csv(tmp_path, "email\nann@example.org\nANN@example.org\nAnn@Example.Org\n")
    with store.begin() as conn:
        report = csvimp.import_csv(conn, path, secret=SECRET)
        assert report.added == 1
        assert report.refused == 2
        assert report.lines[0].endswith(
            "people.csv:3: ANN@example.org is a duplicate of line 2 (only the first one is used)"
        )
        assert "people.csv:4:" in report.lines[1]
        assert len(list(subs.list_subscribers(conn))) == 1


def test_reimport_leaves_present_people_alone_even_when_unsubscribed(
    store: Store, tmp_path: Path
) -> None:
    path = write_csv(tmp_path, "email\nann@example.org\nbob@example.org\n")
    with store.begin() as conn:
        csvimp.import_csv(conn, path, secret=SECRET)
        ann = subs.get_by_email(conn, "ann@example.org")
        assert ann is not None
        subs.unsubscribe(conn, ann.id, NOW)
        report = csvimp.import_csv(conn, path, secret=SECRET)
        assert (report.added, report.already_present) == (0, 2)
        again = subs.get_by_email(conn, "ann@example.org")
    assert again is not None
    assert again.status is SubscriberStatus.UNSUBSCRIBED


def test_duplicates_across_import_batches_are_caught(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(csvimp, "IMPORT_BATCH", 2)
    text = "email\na@example.org\nb@example.org\nc@example.org\nA@EXAMPLE.ORG\n"
    with store.begin() as conn:
        report = csvimp.import_csv(conn, io.StringIO(text), secret=SECRET)
    assert (report.added, report.already_present, report.refused) == (3, 0, 1)
    assert report.lines == [
        "<csv>:5: A@example.org is a duplicate of an earlier row (only the first one is used)"
    ]


def test_erased_person_leaves_only_a_keyed_hash_and_is_skipped_on_reimport(
    store: Store, tmp_path: Path
) -> None:
    path = write_csv(tmp_path, "email,name\nann@example.org,Ann\nbob@example.org,Bob\n")
    with store.begin() as conn:
        csvimp.import_csv(conn, path, secret=SECRET)
        assert subs.erase_subscriber(conn, SECRET, "ANN@example.org", NOW)
        assert subs.get_by_email(conn, "ann@example.org") is None
        kept = conn.execute(select(schema.erased.c.email_hash)).scalars().all()
        assert len(kept) == 1
        assert "ann" not in kept[0]
        report = csvimp.import_csv(conn, path, secret=SECRET)
        assert report.erased_skipped == 1
        assert "people.csv:2: ann@example.org asked to be erased" in report.lines[0]
        assert subs.get_by_email(conn, "ann@example.org") is None
        assert subs.is_erased(conn, SECRET, "Ann@example.org")


def test_export_holds_profile_and_consent_times(store: Store) -> None:
    with store.begin() as conn:
        rec = subs.add_subscriber(conn, "ann@example.org", name="Ann", topics="x;y", now=NOW)
        subs.update_preferences(conn, rec.id, topics=["y"], language="fr")
        data = subs.export_subscriber(conn, "Ann@example.org")
    assert data is not None
    assert data["email"] == "ann@example.org"
    assert data["topics"] == ["y"]
    assert data["language"] == "fr"
    assert data["confirmed_at"] == NOW.isoformat()
    assert data["deliveries"] == []


def test_status_changes_are_timestamped(store: Store) -> None:
    with store.begin() as conn:
        rec = subs.add_subscriber(conn, "ann@example.org", status=SubscriberStatus.PENDING)
        assert rec.confirmed_at is None
        subs.set_status(conn, rec.id, SubscriberStatus.ACTIVE, NOW)
        subs.unsubscribe(conn, rec.id, NOW)
        got = subs.get_by_id(conn, rec.id)
    assert got is not None
    assert got.status is SubscriberStatus.UNSUBSCRIBED
    assert got.unsubscribed_at == NOW


def test_active_subscribers_streams_only_active_people(store: Store) -> None:
    with store.begin() as conn:
        for i in range(25):
            subs.add_subscriber(conn, f"p{i}@example.org")
        gone = subs.get_by_email(conn, "p3@example.org")
        assert gone is not None
        subs.unsubscribe(conn, gone.id)
    with store.connect() as conn:
        emails = [s.email for s in subs.active_subscribers(conn, batch=4)]
    assert len(emails) == 24
    assert "p3@example.org" not in emails


@given(st.sampled_from(["ann@example.org", "Ann@Example.org", " ANN@EXAMPLE.ORG "]))
def test_email_key_ignores_case_and_spaces(address: str) -> None:
    assert subs.email_key(address) == "ann@example.org"


@given(st.lists(st.sampled_from(["a", "b", "c", " ", ""]), max_size=8))
def test_topics_parse_is_order_keeping_and_deduplicated(parts: list[str]) -> None:
    got = subs.parse_topics(";".join(parts))
    assert len(set(got)) == len(got)
    assert all(t.strip() and t in parts for t in got)
