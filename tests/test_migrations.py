"""Alembic migrations: a database made before Alembic upgrades in place with its data intact, a new
one is created at head, two branches' revisions merge, and revisions match ``schema.py``."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect

from digest.errors import StoreError
from digest.store import open_store, schema
from digest.store.db import Store, schema_version
from digest.store.migrations import HERE, alembic_config, known_heads, upgrade

#: Made by `digest run --once` on the demo (4 feeds, 13 items, issue #1, 2 subscribers, 2
#: deliveries) with main as of d298a73, before Alembic: meta.schema_version = 1.
V1_MAIN = Path(__file__).parent / "data" / "db" / "v1-main.sqlite"


def _dump(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    db = sqlite3.connect(path)
    try:
        names = [
            r[0]
            for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        ]
        return {n: sorted(db.execute(f'SELECT * FROM "{n}"').fetchall(), key=repr) for n in names}
    finally:
        db.close()


def _revisions(store: Store) -> set[str]:
    with store.connect() as conn:
        return {r[0] for r in conn.exec_driver_sql("SELECT version_num FROM alembic_version")}


def _head() -> str:
    return ScriptDirectory.from_config(alembic_config()).get_current_head() or ""


@pytest.mark.sqlite_only  # the pre-Alembic database kept is a SQLite file
def test_a_database_made_by_main_before_alembic_upgrades_with_its_data_intact(
    tmp_path: Path,
) -> None:
    db = tmp_path / "v1.sqlite"
    shutil.copy(V1_MAIN, db)
    before = _dump(db)
    assert before["meta"] == [("schema_version", "1")]
    assert "alembic_version" not in before

    store = open_store(f"sqlite:///{db}")

    assert _revisions(store) == {_head()}
    with store.connect() as conn:
        assert schema_version(conn) == schema.SCHEMA_VERSION == 2
        assert compare_metadata(MigrationContext.configure(conn), schema.metadata) == []
    store.close()
    after = _dump(db)
    assert after["meta"] == [("schema_version", "2")]
    for table in ("feeds", "items", "item_topics", "summaries", "issues", "issue_items"):
        assert after[table], table
        # Later revisions may add columns (at the end): the old values are all still there.
        assert [row[: len(before[table][0])] for row in after[table]] == before[table], table
    assert len(after["subscribers"]) == 2
    assert after["subscribers"] == before["subscribers"]
    assert len(after["deliveries"]) == 2
    # Later revisions add columns at the end (w13_claims: the claim, empty): the rest is intact.
    width = len(before["deliveries"][0])
    assert [r[:width] for r in after["deliveries"]] == before["deliveries"]
    assert {r[width:] for r in after["deliveries"]} == {(None, None, None)}


@pytest.mark.sqlite_only  # the pre-Alembic database kept is a SQLite file
def test_the_upgraded_database_still_serves_the_store(tmp_path: Path) -> None:
    from digest.store import subscribers

    db = tmp_path / "v1.sqlite"
    shutil.copy(V1_MAIN, db)
    with open_store(f"sqlite:///{db}").connect() as conn:
        emails = [s.email for s in subscribers.list_subscribers(conn)]
    assert sorted(emails) == ["alice@example.org", "bob@example.org"]


def test_a_new_database_is_created_and_stamped_at_head(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/new.db")
    assert _revisions(store) == {_head()}
    with store.connect() as conn:
        assert schema_version(conn) == schema.SCHEMA_VERSION
        assert compare_metadata(MigrationContext.configure(conn), schema.metadata) == []


def test_the_revisions_from_scratch_build_what_schema_py_declares(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/scratch.db")
    with engine.begin() as conn:
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "heads")
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), schema.metadata) == []
        assert schema_version(conn) == schema.SCHEMA_VERSION
    engine.dispose()


def test_the_shipped_revisions_have_one_head_known_without_alembic() -> None:
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    assert len(heads) == 1, f"several heads {heads}: add a merge revision (store/migrations doc)"
    assert known_heads(HERE / "versions") == set(heads)


def test_a_revision_from_a_newer_digest_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/d.db"
    with open_store(url).begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = 'w99_from_the_future'")
    with pytest.raises(StoreError, match="'w99_from_the_future' is newer than this digest"):
        open_store(url)


def test_an_up_to_date_database_opens_without_importing_alembic(db_url: str) -> None:
    url = db_url
    open_store(url).close()
    code = (
        "import sys; from digest.store import open_store; "
        f"open_store({url!r}).close(); print('alembic' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


_BRANCH = '''"""{name}"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "{name}"
down_revision = "{parent}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("{name}_table", sa.Column("id", sa.Integer, primary_key=True))


def downgrade() -> None:
    op.drop_table("{name}_table")
'''


def test_two_branch_revisions_on_one_parent_merge_and_upgrade_reaches_the_merge(
    tmp_path: Path,
) -> None:
    migrations = tmp_path / "migrations"
    shutil.copytree(HERE, migrations, ignore=shutil.ignore_patterns("__pycache__"))
    url = f"sqlite:///{tmp_path}/d.db"
    open_store(url).close()  # a database at today's head, before either branch
    parent = _head()
    for name in ("w11_branch_a", "w13_branch_b"):
        text = _BRANCH.format(name=name, parent=parent)
        (migrations / "versions" / f"{name}.py").write_text(text, encoding="utf-8")
    assert known_heads(migrations / "versions") == {"w11_branch_a", "w13_branch_b"}

    # What `alembic ... merge heads` does: a revision whose parents are both heads.
    command.merge(alembic_config(migrations), "heads", message="merge a and b", rev_id="merge_ab")

    merge_file = migrations / "versions" / "merge_ab.py"
    assert "('w11_branch_a', 'w13_branch_b')" in merge_file.read_text(encoding="utf-8")
    assert known_heads(migrations / "versions") == {"merge_ab"}
    store = open_store(url, create=False)
    upgrade(store, script_location=migrations)
    assert _revisions(store) == {"merge_ab"}
    with store.connect() as conn:
        tables = set(inspect(conn).get_table_names())
    assert {"w11_branch_a_table", "w13_branch_b_table"} <= tables
    upgrade(store, script_location=migrations)  # at head: nothing left to do
    assert _revisions(store) == {"merge_ab"}
