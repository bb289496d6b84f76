"""Decide on the article, not the teaser: ``items.full_text`` keeps the article page's text
fetched for a teaser before its topic decision, so it is never fetched twice.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "w12b_item_full_text"
down_revision = "w12b_item_sightings"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("items") as batch:
        batch.add_column(sa.Column("full_text", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("items") as batch:
        batch.drop_column("full_text")
