"""Chat: rooms, the outbox, the messages taken up.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "chat_rooms",
        sa.Column("transport", sa.String(64), primary_key=True),
        sa.Column("room", sa.String(255), primary_key=True),
        sa.Column("ambient", sa.Boolean),
        sa.Column("notified_through", sa.Integer),
    )
    op.create_table(
        "chat_outbox",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("transport", sa.String(64), nullable=False),
        sa.Column("room", sa.String(255), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("reply_to", sa.String(255)),
        sa.Column("request_id", sa.String(32)),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("sent_at", sa.Float),
        sa.Column("message_id", sa.String(255)),
        sa.Column("failure", sa.Text),
        sqlite_autoincrement=True,
    )
    op.create_index("chat_outbox_unsent", "chat_outbox", ["transport", "sent_at", "id"])
    op.create_table(
        "chat_seen",
        sa.Column("transport", sa.String(64), primary_key=True),
        sa.Column("message_id", sa.String(255), primary_key=True),
        sa.Column("at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("chat_seen")
    op.drop_index("chat_outbox_unsent", "chat_outbox")
    op.drop_table("chat_outbox")
    op.drop_table("chat_rooms")
