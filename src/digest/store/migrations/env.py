"""Alembic's environment: run the revisions on the connection ``migrations.upgrade`` passes in.

From the ``alembic`` command line (no connection given) the database is ``-x url=...``, else
``$DIGEST_STORAGE_URL``, else ``sqlite:///var/digest.db``.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import Connection

from digest.store import open_store, schema


def _run(conn: Connection) -> None:
    context.configure(
        connection=conn,
        target_metadata=schema.metadata,
        # SQLite alters a table by copying it: op.batch_alter_table does that for a revision.
        render_as_batch=conn.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def _main() -> None:
    given = context.config.attributes.get("connection")
    if given is not None:
        _run(given)
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or os.environ.get(
        "DIGEST_STORAGE_URL", "sqlite:///var/digest.db"
    )
    # The store's own engine: psycopg 3 for postgresql:// URLs, SQLite's pragmas.
    store = open_store(url, create=False)
    try:
        with store.engine.begin() as conn:
            _run(conn)
    finally:
        store.close()


_main()
