"""Schema versioning: create on first use, then apply numbered migrations in order.

Add a migration by bumping ``schema.SCHEMA_VERSION`` and appending a function to ``MIGRATIONS``
that brings version N-1 to N (plain DDL through SQLAlchemy, so it runs on SQLite and PostgreSQL).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import Connection, insert, update

from digest.errors import StoreError
from digest.store import schema
from digest.store.db import Store, schema_version

log = logging.getLogger(__name__)

#: MIGRATIONS[n] upgrades a database from version n+1 to n+2 (version 1 is ``create_all``).
MIGRATIONS: list[Callable[[Connection], None]] = []


def upgrade(store: Store) -> int:
    """Bring the database to ``schema.SCHEMA_VERSION``; returns the version found before."""
    with store.begin() as conn:
        found = schema_version(conn)
        if found is None:
            schema.metadata.create_all(conn)
            conn.execute(
                insert(schema.meta).values(key="schema_version", value=str(schema.SCHEMA_VERSION))
            )
            log.info("created database schema", extra={"version": schema.SCHEMA_VERSION})
            return 0
        if found > schema.SCHEMA_VERSION:
            raise StoreError(
                f"{store.url}: schema version {found} is newer than this digest "
                f"({schema.SCHEMA_VERSION}); upgrade digest"
            )
        for version in range(found, schema.SCHEMA_VERSION):
            MIGRATIONS[version - 1](conn)
            log.info("migrated database schema", extra={"version": version + 1})
        if found != schema.SCHEMA_VERSION:
            conn.execute(
                update(schema.meta)
                .where(schema.meta.c.key == "schema_version")
                .values(value=str(schema.SCHEMA_VERSION))
            )
        return found
