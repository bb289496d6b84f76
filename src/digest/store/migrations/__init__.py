"""Schema migrations through Alembic: a new database is created and stamped at head, an existing
one upgraded on every start; revisions live in ``versions/`` (one file each, named by its id).

Add a revision (from the repository root; the id carries your branch prefix, at most 32 chars)::

    .venv/bin/alembic -c src/digest/store/migrations/alembic.ini revision \\
        -m "editor decisions" --rev-id w11_editor_decisions

It gets ``down_revision`` = the current head. Write ``upgrade()``/``downgrade()`` with ``op.*``
(SQLAlchemy renders the DDL for SQLite and PostgreSQL; on SQLite alter tables through
``op.batch_alter_table``), and change ``schema.py`` the same way: a test checks that the
revisions and ``schema.metadata`` describe the same schema. Two branches that each added a
revision leave two heads (a test fails); merge them, which writes a revision with both parents::

    .venv/bin/alembic -c src/digest/store/migrations/alembic.ini merge heads \\
        -m "merge w11 and w13" --rev-id merge_w11_w13
"""

from __future__ import annotations

import ast
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, insert

from digest.errors import StoreError
from digest.store import schema
from digest.store.db import Store, schema_version

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
#: The revision equal to the schema digest made before Alembic (``meta.schema_version`` = 1).
BASELINE = "v1_baseline"


def upgrade(store: Store, *, script_location: Path = HERE) -> None:
    """Create the schema (new database) or bring it to the head revision(s), in one transaction
    under the schema lock (``Store.begin_exclusive``)."""
    heads = known_heads(script_location / "versions")
    with store.connect() as conn:
        if _up_to_date(store, conn, heads):
            return  # the usual start: up to date, no lock taken, Alembic not even imported
    # Creating or upgrading: one process at a time (an advisory lock on PostgreSQL, BEGIN
    # IMMEDIATE on SQLite), so any number of digests can start together on an empty database;
    # those that waited find the work done when they look again under the lock.
    with store.begin_exclusive() as conn:
        if _up_to_date(store, conn, heads):
            return
        _migrate(store, conn, script_location, schema_version(conn), _current_revisions(conn))


def _up_to_date(store: Store, conn: Connection, heads: set[str] | None) -> bool:
    found = schema_version(conn)
    if found is not None and found > schema.SCHEMA_VERSION:
        raise StoreError(
            f"{store.url}: schema version {found} is newer than this digest "
            f"({schema.SCHEMA_VERSION}); upgrade digest"
        )
    return (
        heads is not None and found == schema.SCHEMA_VERSION and _current_revisions(conn) == heads
    )


def _migrate(
    store: Store, conn: Connection, location: Path, found: int | None, current: set[str]
) -> None:
    from alembic import command
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    # Our own log lines say what happened; Alembic's INFO lines would reach every CLI user.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    cfg = alembic_config(location)
    cfg.attributes["connection"] = conn
    if found is None and not current:
        schema.metadata.create_all(conn)
        conn.execute(
            insert(schema.meta).values(key="schema_version", value=str(schema.SCHEMA_VERSION))
        )
        command.stamp(cfg, "heads")
        log.info("created database schema", extra={"revision": _joined(_current_revisions(conn))})
        return
    if not current:  # made before Alembic: the baseline is what it already has
        command.stamp(cfg, BASELINE)
    script = ScriptDirectory.from_config(cfg)
    for rev in _current_revisions(conn):
        try:
            script.get_revision(rev)
        except CommandError:
            raise StoreError(_newer(store, f"schema revision {rev!r}")) from None
    before = _joined(_current_revisions(conn))
    command.upgrade(cfg, "heads")
    log.info(
        "migrated database schema",
        extra={"from_revision": before, "revision": _joined(_current_revisions(conn))},
    )


def alembic_config(location: Path = HERE) -> Config:
    """An Alembic configuration for the revisions at ``location`` (no ini file needed)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(location))
    cfg.set_main_option("file_template", "%%(rev)s")
    return cfg


def known_heads(versions: Path) -> set[str] | None:
    """The head revisions read from the files' literal ids, or None if a file is not that simple.

    Lets an up-to-date database skip importing Alembic (~0.2 s); anything unusual takes the
    full Alembic path.
    """
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in versions.glob("*.py"):
        if path.name == "__init__.py":
            continue
        ids = _literal_ids(path)
        if ids is None:
            return None
        rev, down = ids
        revisions.add(rev)
        parents.update(down)
    return revisions - parents


def _literal_ids(path: Path) -> tuple[str, tuple[str, ...]] | None:
    found: dict[str, object] = {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name) and target.id in ("revision", "down_revision"):
                try:
                    found[target.id] = ast.literal_eval(node.value)
                except ValueError:
                    return None
    rev, down = found.get("revision"), found.get("down_revision")
    if not isinstance(rev, str):
        return None
    if down is None:
        return rev, ()
    if isinstance(down, str):
        return rev, (down,)
    if isinstance(down, tuple | list) and all(isinstance(d, str) for d in down):
        return rev, tuple(str(d) for d in down)
    return None


def _current_revisions(conn: Connection) -> set[str]:
    if not conn.dialect.has_table(conn, "alembic_version"):
        return set()
    rows = conn.exec_driver_sql("SELECT version_num FROM alembic_version")
    return {str(r[0]) for r in rows}


def _newer(store: Store, what: str) -> str:
    return f"{store.url}: {what} is newer than this digest; upgrade digest"


def _joined(revisions: set[str]) -> str:
    return ",".join(sorted(revisions))


__all__ = ["BASELINE", "alembic_config", "known_heads", "upgrade"]
