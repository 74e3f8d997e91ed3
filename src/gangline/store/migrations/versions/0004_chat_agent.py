"""The chat agent: runs about a conversation rather than an item, and each room's session.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.alter_column("item_id", existing_type=sa.Integer, nullable=True)
        batch.add_column(sa.Column("chat_transport", sa.String(64)))
        batch.add_column(sa.Column("chat_room", sa.String(255)))
    op.create_index(
        "one_live_run_per_room",
        "runs",
        ["chat_transport", "chat_room"],
        unique=True,
        sqlite_where=sa.text("ended_at IS NULL"),
        postgresql_where=sa.text("ended_at IS NULL"),
    )
    with op.batch_alter_table("chat_rooms") as batch:
        batch.add_column(sa.Column("agent_session", sa.String(128)))


def downgrade() -> None:
    with op.batch_alter_table("chat_rooms") as batch:
        batch.drop_column("agent_session")
    op.drop_index("one_live_run_per_room", "runs")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("chat_room")
        batch.drop_column("chat_transport")
        batch.alter_column("item_id", existing_type=sa.Integer, nullable=False)
