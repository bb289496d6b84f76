"""Opening the database: engine, SQLite pragmas (WAL), transactions, schema creation/upgrade.

One ``Store`` per process; every write happens inside ``store.begin()`` (one transaction).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from digest.errors import StoreError
from digest.store import schema

log = logging.getLogger(__name__)


#: The PostgreSQL advisory lock key held while the schema is created or upgraded
#: (an arbitrary constant: the bytes of "digest" as a big-endian integer).
SCHEMA_LOCK_KEY = int.from_bytes(b"digest", "big")
_ADVISORY_LOCK = text("SELECT pg_advisory_xact_lock(:key)")


class Store:
    """A database handle: ``with store.begin() as conn: ...`` runs one transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A transaction: committed when the block ends, rolled back on error."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise StoreError(f"{self.url}: {_short(exc)}") from exc

    @contextmanager
    def begin_exclusive(self) -> Iterator[Connection]:
        """A transaction that no other process runs at the same time (schema creation/upgrade).

        PostgreSQL: a transaction-scoped advisory lock (released at commit or rollback, also
        when the process dies). SQLite: BEGIN IMMEDIATE, which takes the database's write lock
        before anything is read; others wait (busy_timeout) instead of racing.
        """
        try:
            with self.engine.connect() as conn:
                if self.is_sqlite:
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                elif self.engine.dialect.name == "postgresql":
                    conn.execute(_ADVISORY_LOCK, {"key": SCHEMA_LOCK_KEY})
                yield conn
                conn.commit()
        except SQLAlchemyError as exc:
            raise StoreError(f"{self.url}: {_short(exc)}") from exc

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """A connection for reads (and for callers that commit themselves)."""
        try:
            with self.engine.connect() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise StoreError(f"{self.url}: {_short(exc)}") from exc

    def close(self) -> None:
        self.engine.dispose()


@contextmanager
def savepoint(conn: Connection) -> Iterator[Connection]:
    """A savepoint inside the current transaction: on error only its own work is undone, and
    the error comes out as ``StoreError`` (one unit fails, the transaction goes on).
    On SQLite the transaction is made a real one first (``begin_writes``): the savepoint's
    RELEASE must not commit on its own, so what lands together is the caller's transaction."""
    begin_writes(conn)
    try:
        with conn.begin_nested():
            yield conn
    except SQLAlchemyError as exc:
        raise StoreError(_short(exc)) from exc


def begin_writes(conn: Connection) -> None:
    """Make the transaction ``conn`` is in a real one before savepoints are used in it.

    SQLite's Python driver sends BEGIN only before the first INSERT/UPDATE/DELETE: a SAVEPOINT
    before that starts a transaction of its own, which its RELEASE commits, so a rollback of
    the caller's transaction (``--dry-run``) would not undo it. Other databases need nothing.
    """
    if conn.dialect.name != "sqlite":
        return
    dbapi = conn.connection.dbapi_connection
    if dbapi is not None and not getattr(dbapi, "in_transaction", True):
        conn.exec_driver_sql("BEGIN")


def upsert_insert(conn: Connection) -> Any:
    """The dialect's INSERT that knows ON CONFLICT (SQLite and PostgreSQL share the syntax)."""
    return postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert


def _short(exc: SQLAlchemyError) -> str:
    return str(getattr(exc, "orig", None) or exc).splitlines()[0]


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # Two digest processes (daemon + CLI) may write at once: wait instead of failing. First,
    # so that switching a new database to WAL waits too when another process is creating it.
    cur.execute("PRAGMA busy_timeout=30000")
    # WAL: readers never block the writer; a crash never corrupts committed transactions.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


#: Spellings of PostgreSQL URLs that mean "the psycopg 3 driver digest installs".
_PG_ALIASES = ("postgresql", "postgres", "postgresql+psycopg")


def database_url(url: str) -> URL:
    """Parse ``url``; ``postgresql://`` (and ``postgres://``) use psycopg 3, the installed driver.

    SQLAlchemy would pick psycopg2 for a bare ``postgresql://``, which digest does not install.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError(f"{url}: not a database URL (e.g. sqlite:///var/digest.db)") from None
    if parsed.drivername in _PG_ALIASES:
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def open_store(url: str, *, create: bool = True) -> Store:
    """Open (and on first use create or upgrade) the database at ``url``."""
    parsed = database_url(url)
    options: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    if parsed.get_backend_name() == "postgresql":
        # A server restart or a proxy closing idle connections costs one retry, not a failed job.
        options["pool_pre_ping"] = True
    try:
        engine = create_engine(parsed, **options)
    except (SQLAlchemyError, ImportError) as exc:
        raise StoreError(f"{parsed.render_as_string(hide_password=True)}: {exc}") from exc
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    store = Store(engine)
    if create:
        from digest.store.migrations import upgrade

        upgrade(store)
    return store


def schema_version(conn: Connection) -> int | None:
    """The version recorded in ``meta``, or None for an empty database."""
    if not conn.dialect.has_table(conn, "meta"):
        return None
    row = conn.execute(
        select(schema.meta.c.value).where(schema.meta.c.key == "schema_version")
    ).first()
    return int(row[0]) if row else None
