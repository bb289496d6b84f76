"""The database opens, creates its schema once, and refuses a schema from the future."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select, update

from digest.errors import StoreError
from digest.store import open_store, schema
from digest.store.db import database_url, savepoint, schema_version


@pytest.mark.sqlite_only
def test_first_use_creates_parent_folder_and_schema(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/var/digest.db")
    assert (tmp_path / "var" / "digest.db").exists()
    with store.connect() as conn:
        assert schema_version(conn) == schema.SCHEMA_VERSION
        assert conn.execute(select(schema.feeds)).all() == []


@pytest.mark.sqlite_only
def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/d.db")
    with store.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_reopening_keeps_data(db_url: str) -> None:
    url = db_url
    with open_store(url).begin() as conn:
        conn.execute(schema.meta.insert().values(key="marker", value="kept"))
    with open_store(url).connect() as conn:
        got = conn.execute(select(schema.meta.c.value).where(schema.meta.c.key == "marker"))
        assert got.scalar() == "kept"


def test_a_newer_schema_is_refused_with_a_clear_error(db_url: str) -> None:
    url = db_url
    with open_store(url).begin() as conn:
        conn.execute(update(schema.meta).values(value=str(schema.SCHEMA_VERSION + 1)))
    with pytest.raises(StoreError, match="newer than this digest"):
        open_store(url)


def test_a_bad_url_is_a_store_error() -> None:
    with pytest.raises(StoreError, match="not a database URL"):
        open_store("not a url")


@pytest.mark.parametrize(
    "given",
    [
        "postgresql://u:p@db.example.org:5432/digest",
        "postgres://u:p@db.example.org:5432/digest",
        "postgresql+psycopg://u:p@db.example.org:5432/digest",
    ],
)
def test_postgresql_urls_use_the_installed_psycopg_driver(given: str) -> None:
    url = database_url(given)
    assert url.drivername == "postgresql+psycopg"
    assert (url.host, url.port, url.database, url.username) == (
        "db.example.org",
        5432,
        "digest",
        "u",
    )


@pytest.mark.postgresql
def test_both_postgresql_url_spellings_open_the_same_database(db_url: str) -> None:
    plain = database_url(db_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with open_store(plain).begin() as conn:
        conn.execute(schema.meta.insert().values(key="marker", value="via postgresql://"))
    with open_store(db_url).connect() as conn:
        got = conn.execute(select(schema.meta.c.value).where(schema.meta.c.key == "marker"))
        assert got.scalar() == "via postgresql://"


def test_work_in_savepoints_is_undone_with_the_transaction_around_them(db_url: str) -> None:
    """A savepoint lets one unit fail alone; it never commits on its own (SQLite's driver sends
    BEGIN only before the first write, and a RELEASE outside a transaction would commit)."""
    store = open_store(db_url)

    def run_that_fails_after_two_units() -> None:
        with store.begin() as conn:
            for n in (1, 2):
                with savepoint(conn):
                    conn.execute(schema.meta.insert().values(key=f"unit {n}", value="done"))
            raise RuntimeError("the run fails after both units")

    with pytest.raises(RuntimeError):
        run_that_fails_after_two_units()
    with store.connect() as conn:
        keys = conn.execute(select(schema.meta.c.key).where(schema.meta.c.key.like("unit %")))
        assert keys.all() == []
