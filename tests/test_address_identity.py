"""Address identity (lower-cased, never case-folded), its migration, and secret rotation:
``STRASSE@`` is not ``straße@``, an address erased before either change stays erased, and links
signed with the previous secret keep working while nothing new is signed with it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import create_engine, insert, select
from starlette.testclient import TestClient

from conftest import run_cli
from digest.errors import InvalidToken
from digest.models import SubscriberStatus
from digest.store import open_store, schema
from digest.store import subscribers as subs
from digest.store.migrations import alembic_config
from digest.store.subscribers_csv import import_csv
from digest.tokens import keyed_hash, make_token, read_token
from digest.web import create_app
from test_web_helpers import make_settings

OLD = b"the-secret-before-rotation-0123456789"
NEW = b"the-secret-after-rotation-9876543210ab"
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


# --------------------------------------------------------------------------- the key


def test_email_key_lowercases_domain_and_local_part_without_case_folding() -> None:
    assert subs.email_key(" Ann.Lee@Example.ORG ") == "ann.lee@example.org"
    assert subs.email_key("STRASSE@example.org") == "strasse@example.org"
    assert subs.email_key("Straße@example.org") == "straße@example.org"
    assert subs.email_key("STRASSE@example.org") != subs.email_key("straße@example.org")
    assert subs.email_key("ann+news@example.org") != subs.email_key("ann@example.org")


@given(st.from_regex(r"[A-Za-zßẞéÉ]{1,12}", fullmatch=True))
def test_email_key_is_finer_than_the_old_casefold_key(local: str) -> None:
    # Equal new keys imply equal old keys: the migration can never create a duplicate.
    address = f"{local}@Example.org"
    other = f"{local.lower()}@example.org"
    if subs.email_key(address) == subs.email_key(other):
        assert subs.legacy_email_key(address) == subs.legacy_email_key(other)


def test_removing_strasse_does_not_erase_strasse_with_eszett(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIGEST_SECRET", NEW.decode())
    (workdir / "digest.toml").write_text('[storage]\nurl = "sqlite:///d.db"\n', encoding="utf-8")
    (workdir / "people.csv").write_text("email\nstraße@example.org\n", encoding="utf-8")
    assert run_cli(capsys, "--config", "digest.toml", "subscribers", "import", "people.csv")[0] == 0
    result = run_cli(
        capsys, "--config", "digest.toml", "subscribers", "remove", "STRASSE@example.org"
    )
    assert result.code == 2
    assert "no such subscriber" in result.err
    listed = run_cli(capsys, "--config", "digest.toml", "subscribers", "list").out
    assert listed.startswith("straße@example.org\tactive")
    # And both may be subscribers, as two people.
    (workdir / "more.csv").write_text("email\nSTRASSE@example.org\n", encoding="utf-8")
    out = run_cli(capsys, "--config", "digest.toml", "subscribers", "import", "more.csv").out
    assert "1 added" in out


# --------------------------------------------------------------------------- the migration


def _database_before_issue_10(path: Path) -> None:
    """A database at the revision before this change, filled by the rules of the time."""
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "v2_alembic")
        for i, email in enumerate(["Straße@example.org", "Ann@Example.org"]):
            conn.execute(
                insert(schema.subscribers).values(
                    email=email,
                    email_key=email.casefold(),
                    status="active",
                    topics="",
                    created=NOW,
                    source="import",
                    token_key=f"{i:032x}",
                )
            )
        for gone in ("gone@example.org", "Weiß@example.org"):
            conn.exec_driver_sql(
                "INSERT INTO erased (email_hash, erased_at) VALUES (?, ?)",
                (keyed_hash(OLD, gone.casefold(), purpose="erased"), NOW.isoformat()),
            )
    engine.dispose()


@pytest.mark.sqlite_only  # the database from before the revision is built as a SQLite file
def test_upgrade_rekeys_subscribers_and_keeps_old_erasures_erased(tmp_path: Path) -> None:
    db = tmp_path / "before.db"
    _database_before_issue_10(db)
    store = open_store(f"sqlite:///{db}")
    with store.begin() as conn:
        keys = dict(
            conn.execute(select(schema.subscribers.c.email, schema.subscribers.c.email_key)).all()
        )
        assert keys == {
            "Straße@example.org": "straße@example.org",
            "Ann@Example.org": "ann@example.org",
        }
        rules = set(conn.execute(select(schema.erased.c.key_rule)).scalars())
        assert rules == {"casefold"}
        # Markers made with the old key (and the old secret, after a rotation) still match.
        assert subs.is_erased(conn, NEW, "GONE@example.org", previous=OLD)
        assert subs.is_erased(conn, NEW, "weiß@example.org", previous=OLD)
        assert not subs.is_erased(conn, NEW, "gone@example.org")  # without the old secret
        assert not subs.is_erased(conn, NEW, "ann@example.org", previous=OLD)
        # STRASSE is now someone else than Straße.
        assert subs.get_by_email(conn, "STRASSE@example.org") is None
        assert subs.get_by_email(conn, "straße@EXAMPLE.org") is not None
        subs.add_subscriber(conn, "STRASSE@example.org", now=NOW)
        assert subs.erase_subscriber(conn, NEW, "STRASSE@example.org", NOW)
        assert subs.get_by_email(conn, "Straße@example.org") is not None
        assert (
            conn.execute(
                select(schema.erased.c.key_rule).where(
                    schema.erased.c.email_hash == subs.erased_hash(NEW, "strasse@example.org")
                )
            ).scalar()
            == "lower"
        )
    csv_file = tmp_path / "again.csv"
    csv_file.write_text("email\ngone@example.org\nweiss@example.org\nnew@example.org\n")
    with store.begin() as conn:
        report = import_csv(conn, csv_file, secret=NEW, previous=OLD)
    # weiss@ matches the legacy marker of Weiß@ (the old key could not tell them apart):
    # when in doubt, an erased person is not re-imported.
    assert report.erased_skipped == 2
    assert report.added == 1
    store.close()


def test_a_new_erasure_of_strasse_does_not_block_strasse_with_eszett(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/d.db")
    with store.begin() as conn:
        subs.add_subscriber(conn, "STRASSE@example.org", now=NOW)
        subs.erase_subscriber(conn, NEW, "STRASSE@example.org", NOW)
        assert subs.is_erased(conn, NEW, "strasse@example.org")
        assert not subs.is_erased(conn, NEW, "straße@example.org", previous=OLD)
    csv_file = tmp_path / "people.csv"
    csv_file.write_text("email\nstraße@example.org\nStrasse@example.org\n", encoding="utf-8")
    with store.begin() as conn:
        report = import_csv(conn, csv_file, secret=NEW)
    assert (report.added, report.erased_skipped) == (1, 1)
    store.close()


# --------------------------------------------------------------------------- rotation


def test_a_token_signed_with_the_previous_secret_is_still_read() -> None:
    token = make_token(OLD, "unsubscribe", "k" * 32)
    assert read_token(NEW, token, "unsubscribe", NOW, previous=OLD) == "k" * 32
    with pytest.raises(InvalidToken):
        read_token(NEW, token, "unsubscribe", NOW)
    with pytest.raises(InvalidToken):  # previous verifies only what it signed
        read_token(NEW, make_token(b"x" * 32, "unsubscribe", "k"), "unsubscribe", NOW, previous=OLD)


def test_after_a_rotation_old_links_work_on_the_web_and_new_ones_use_the_new_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIGEST_SECRET", NEW.decode())
    monkeypatch.setenv("DIGEST_SECRET_PREVIOUS", OLD.decode())
    settings = make_settings(tmp_path)
    store = open_store(settings.storage.url)
    with store.begin() as conn:
        reader = subs.add_subscriber(conn, "reader@example.org", now=NOW)
    with TestClient(create_app(settings, store, clock=lambda: NOW)) as client:
        old_link = f"/unsubscribe/{make_token(OLD, 'unsubscribe', reader.token_key)}"
        page = client.get(old_link)
        assert page.status_code == 200
        # The page's own links are signed with the new secret only.
        new_pref = make_token(NEW, "preferences", reader.token_key)
        assert new_pref in page.text
        assert make_token(OLD, "preferences", reader.token_key) not in page.text
        response = client.post(old_link, data={"List-Unsubscribe": "One-Click"})
        assert response.status_code == 200
        expired = make_token(OLD, "confirm", reader.token_key, NOW - timedelta(hours=1))
        assert client.get(f"/confirm/{expired}").status_code == 410
    with store.connect() as conn:
        record = subs.get_by_email(conn, "reader@example.org")
    assert record is not None
    assert record.status is SubscriberStatus.UNSUBSCRIBED
    store.close()


def test_the_cli_unsubscribes_with_a_token_of_the_previous_secret(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIGEST_SECRET", NEW.decode())
    monkeypatch.setenv("DIGEST_SECRET_PREVIOUS", OLD.decode())
    (workdir / "digest.toml").write_text('[storage]\nurl = "sqlite:///d.db"\n', encoding="utf-8")
    store = open_store("sqlite:///d.db")
    with store.begin() as conn:
        reader = subs.add_subscriber(conn, "reader@example.org", now=NOW)
    store.close()
    token = make_token(OLD, "unsubscribe", reader.token_key)
    result = run_cli(capsys, "--config", "digest.toml", "unsubscribe", token)
    assert result.code == 0
    assert "unsubscribed reader@example.org" in result.out


def test_an_erasure_found_with_the_previous_secret_is_kept_under_the_new_one(
    tmp_path: Path,
) -> None:
    store = open_store(f"sqlite:///{tmp_path}/d.db")
    with store.begin() as conn:
        subs.add_subscriber(conn, "ann@example.org", now=NOW)
        subs.erase_subscriber(conn, OLD, "ann@example.org", NOW)  # before the rotation
    csv_file = tmp_path / "people.csv"
    csv_file.write_text("email\nAnn@example.org\nann@example.org\n", encoding="utf-8")
    with store.begin() as conn:
        report = import_csv(conn, csv_file, secret=NEW, previous=OLD)
    assert (report.added, report.erased_skipped) == (0, 2)  # both spellings, one person
    with store.begin() as conn:
        # The previous secret retired: the marker was written again under the new one.
        assert subs.is_erased(conn, NEW, "ann@example.org")
        report = import_csv(conn, csv_file, secret=NEW)
    assert report.added == 0
    store.close()


def test_the_revision_downgrades_back_to_casefold_keys(tmp_path: Path) -> None:
    db = tmp_path / "before.db"
    _database_before_issue_10(db)
    open_store(f"sqlite:///{db}").close()  # upgrade to head
    engine = create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "v2_alembic")
    with engine.connect() as conn:
        keys = set(conn.exec_driver_sql("SELECT email_key FROM subscribers").scalars())
        columns = {r[1] for r in conn.exec_driver_sql("PRAGMA table_info(erased)")}
    engine.dispose()
    assert keys == {"strasse@example.org", "ann@example.org"}
    assert "key_rule" not in columns
