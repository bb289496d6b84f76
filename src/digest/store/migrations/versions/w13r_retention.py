"""Retention: ``item_fingerprints`` (what is left of a pruned item, so it is not fetched again as
new), ``issues.deliveries_pruned`` (an issue whose delivery rows were pruned is never sent
again) and an index on ``bounces.received`` (bounce reports are pruned by age).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "w13r_retention"
down_revision = "w13_claims"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "item_fingerprints",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("feed_id", sa.Integer(), nullable=False),
        sa.Column("guid_hash", sa.String(length=64), nullable=False),
        sa.Column("url_hash", sa.String(length=64), nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("pruned_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["feed_id"], ["feeds.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("feed_id", "guid_hash", name="uq_item_fingerprints_feed_guid"),
    )
    op.create_index("ix_item_fingerprints_url_hash", "item_fingerprints", ["url_hash"])
    op.create_index("ix_item_fingerprints_pruned_at", "item_fingerprints", ["pruned_at"])
    with op.batch_alter_table("issues") as batch:
        batch.add_column(sa.Column("deliveries_pruned", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_bounces_received", "bounces", ["received"])


def downgrade() -> None:
    op.drop_index("ix_bounces_received", table_name="bounces")
    with op.batch_alter_table("issues") as batch:
        batch.drop_column("deliveries_pruned")
    op.drop_index("ix_item_fingerprints_pruned_at", table_name="item_fingerprints")
    op.drop_index("ix_item_fingerprints_url_hash", table_name="item_fingerprints")
    op.drop_table("item_fingerprints")
