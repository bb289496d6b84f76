"""Fencing tokens and delivery claims: several senders share an issue, a stale one never sends.

- ``fence``: named counters that only grow (the fencing tokens);
- ``locks.token`` (the lease's token) and ``locks.purpose`` ("run": a daemon or a whole
  SQLite send; "build": a send building an issue, which others wait for and then join);
- ``deliveries.claim_token`` / ``claim_owner`` / ``claim_expires``: the batch a sender holds,
  and the index its claims are released through.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "w13_claims"
down_revision = "w15_bounces"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fence",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    with op.batch_alter_table("locks") as batch:
        batch.add_column(sa.Column("token", sa.BigInteger(), nullable=False, server_default="0"))
        batch.add_column(
            sa.Column("purpose", sa.String(length=16), nullable=False, server_default="run")
        )
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("claim_token", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("claim_owner", sa.Text(), nullable=True))
        batch.add_column(sa.Column("claim_expires", sa.DateTime(timezone=True), nullable=True))
        batch.create_index("ix_deliveries_claim_token", ["claim_token"])


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_index("ix_deliveries_claim_token")
        batch.drop_column("claim_expires")
        batch.drop_column("claim_owner")
        batch.drop_column("claim_token")
    with op.batch_alter_table("locks") as batch:
        batch.drop_column("purpose")
        batch.drop_column("token")
    op.drop_table("fence")
