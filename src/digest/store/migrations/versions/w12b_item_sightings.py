"""The same link met in a second feed is kept as coverage of the stored story:
``item_sightings`` (item, feed, the link and title that feed gave, when) feeds "also covered by".
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "w12b_item_sightings"
down_revision = "w10_item_failures"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "item_sightings",
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("feed_id", sa.Integer(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["item_id"], ["items.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["feed_id"], ["feeds.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("item_id", "feed_id"),
    )


def downgrade() -> None:
    op.drop_table("item_sightings")
