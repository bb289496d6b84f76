"""From here on ``alembic_version`` versions the schema; ``meta.schema_version`` becomes 2.

Digests from before Alembic know only version 1, so they refuse this database instead of
running on a schema they do not know. No table changes.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "v2_alembic"
down_revision = "v1_baseline"
branch_labels = None
depends_on = None

_meta = sa.table("meta", sa.column("key", sa.String), sa.column("value", sa.Text))


def upgrade() -> None:
    op.execute(_meta.update().where(_meta.c.key == "schema_version").values(value="2"))


def downgrade() -> None:
    op.execute(_meta.update().where(_meta.c.key == "schema_version").values(value="1"))
