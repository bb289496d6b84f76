"""Bounces, complaints and mailed unsubscribe requests (issue 15): the ``bounces`` table."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "w15_bounces"
down_revision = "w11_editors_desk"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bounces",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "subscriber_id",
            sa.Integer,
            sa.ForeignKey("subscribers.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("issue_id", sa.Integer, sa.ForeignKey("issues.id", ondelete="SET NULL")),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16)),
        sa.Column("diagnostic", sa.Text),
        sa.Column("report_id", sa.Text, nullable=False),
        sa.Column("received", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("report_id", "subscriber_id", name="uq_bounces_report_subscriber"),
    )
    op.create_index("ix_bounces_subscriber_received", "bounces", ["subscriber_id", "received"])


def downgrade() -> None:
    op.drop_index("ix_bounces_subscriber_received", table_name="bounces")
    op.drop_table("bounces")
