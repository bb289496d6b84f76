"""Items remember their failures: ``items.failures`` (how many times this item could not be
handled) and ``items.last_error`` (why, the last time); at three it is skipped for good.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "w10_item_failures"
down_revision = "w10b_address_key"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("items") as batch:
        batch.add_column(sa.Column("failures", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("last_error", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("items") as batch:
        batch.drop_column("last_error")
        batch.drop_column("failures")
