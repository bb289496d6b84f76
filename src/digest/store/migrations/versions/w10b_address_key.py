"""Address identity without case folding: ``subscribers.email_key`` re-derived, erased markers
tagged with the key rule they were made from.

``email_key`` was ``casefold()`` of the address, so ``STRASSE@`` and ``straße@`` were one person
(removing one erased the other). It becomes: local part and domain lower-cased (``str.lower``).
Every row's key is recomputed from its stored (already normalized) address.

``erased`` holds keyed hashes of the old key and the address itself is gone, so those hashes
cannot be recomputed: they are kept and marked ``key_rule = 'casefold'``, and lookups try the old
key for them, so an erased address stays erased. New markers are ``'lower'``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "w10b_address_key"
down_revision = "v2_alembic"
branch_labels = None
depends_on = None

_subscribers = sa.table(
    "subscribers",
    sa.column("id", sa.Integer),
    sa.column("email", sa.Text),
    sa.column("email_key", sa.Text),
)
_BATCH = 1000


def _lower_key(email: str) -> str:
    # Frozen copy of subscribers.email_key for stored (already normalized) addresses.
    local, at, domain = email.strip().rpartition("@")
    if not at:
        return email.strip().lower()
    return f"{local.lower()}@{domain.lower()}"


def _casefold_key(email: str) -> str:
    return email.strip().casefold()


def _rekey(derive: object) -> None:
    assert callable(derive)
    conn = op.get_bind()
    after = 0
    while True:
        rows = conn.execute(
            sa.select(_subscribers.c.id, _subscribers.c.email, _subscribers.c.email_key)
            .where(_subscribers.c.id > after)
            .order_by(_subscribers.c.id)
            .limit(_BATCH)
        ).all()
        if not rows:
            return
        changes = [
            {"b_id": r.id, "b_key": derive(r.email)} for r in rows if derive(r.email) != r.email_key
        ]
        if changes:
            conn.execute(
                _subscribers.update()
                .where(_subscribers.c.id == sa.bindparam("b_id"))
                .values(email_key=sa.bindparam("b_key")),
                changes,
            )
        after = rows[-1].id


def upgrade() -> None:
    # The finer key cannot collide where casefold did not: a lower-cased key that equals
    # another row's would have had the same casefolded key, and keys were unique.
    _rekey(_lower_key)
    with op.batch_alter_table("erased") as batch:
        batch.add_column(
            sa.Column(
                "key_rule", sa.String(16), nullable=False, server_default=sa.text("'casefold'")
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("erased") as batch:
        batch.drop_column("key_rule")
    # Two people told apart since (``STRASSE@``, ``straße@``) make this fail on the unique key:
    # erase or merge one of them first.
    _rekey(_casefold_key)
