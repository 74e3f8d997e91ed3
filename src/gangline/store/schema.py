"""The tables of gangline's state, in portable SQLAlchemy Core (SQLite by default, or PostgreSQL).

Migrations in ``gangline/migrations`` create and change these tables; this module is what the
queries of the store's tables are written against, and a test checks that the two agree.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

items = Table(
    "items",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("slug", String(64), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("title", String(200), nullable=False),
    Column("body", Text, nullable=False),
    Column("priority", Integer, nullable=False),
    Column("pinned_agent", String(64)),
    Column("qa_mode", String(16)),
    Column("stage", String(16), nullable=False),
    Column("hold", String(16)),
    Column("hold_reason", Text),
    Column("frozen", Boolean, nullable=False),
    Column("retries", Integer, nullable=False),
    Column("merge_attempts", Integer, nullable=False),
    Column("session_id", String(128)),
    Column("parked_until", Float),
    Column("start_after", Float),
    Column("archive_at", Float),
    Column("merged_commit", String(64)),
    Column("merged_tip", String(64)),
    Column("feedback", Text),
    Column("report", Text),  # a spike's written report: its result, closed without a merge
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    # SQLite: AUTOINCREMENT, so the id of a deleted item is never handed out again.
    sqlite_autoincrement=True,
)

criteria = Table(
    "criteria",
    metadata,
    Column("item_id", Integer, ForeignKey("items.id", ondelete="CASCADE"), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("text", Text, nullable=False),
    Column("checked", Boolean, nullable=False),
)

dependencies = Table(
    "dependencies",
    metadata,
    Column("item_id", Integer, ForeignKey("items.id", ondelete="CASCADE"), primary_key=True),
    Column("depends_on", Integer, ForeignKey("items.id"), primary_key=True),
)

# Append-only: every transition (with who, why, when) and every other pipeline event.
# Its id is the cursor a client replays from.
# JSON on every database: TEXT holding JSON on SQLite, jsonb on PostgreSQL. An event without
# data stores SQL NULL, not JSON null.
EVENT_DATA = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")

events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("at", Float, nullable=False),
    Column("item_id", Integer),
    Column("run_id", String(64)),
    Column("kind", String(32), nullable=False),
    Column("actor", String(64), nullable=False),
    Column("trigger", String(32)),
    Column("from_stage", String(16)),
    Column("from_hold", String(16)),
    Column("to_stage", String(16)),
    Column("to_hold", String(16)),
    Column("reason", Text),
    Column("data", EVENT_DATA),  # what else the event says (a tool, a cost, an until), JSON: jsonb on PostgreSQL
    Index("events_by_item", "item_id", "id"),
    sqlite_autoincrement=True,
)

runs = Table(
    "runs",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("item_id", Integer),  # NULL: a chat agent's run, about a conversation, not an item
    Column("role", String(16), nullable=False),
    Column("profile", String(64), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("workspace", Text, nullable=False),
    Column("log_path", Text, nullable=False),
    Column("resumed_session", String(128)),
    Column("session_id", String(128)),
    Column("pid", Integer),
    Column("pgid", Integer),
    Column("start_ticks", Integer),
    Column("boot_id", String(36)),  # the machine boot pid and start_ticks belong to (NULL: unknown, before 0005)
    Column("started_at", Float, nullable=False),
    Column("ended_at", Float),
    Column("outcome", String(16)),
    Column("reason", Text),
    Column("input_tokens", Integer, nullable=False),
    Column("output_tokens", Integer, nullable=False),
    Column("cache_read_tokens", Integer, nullable=False),
    Column("cache_write_tokens", Integer, nullable=False),
    Column("cost_usd", Float, nullable=False),
    Column("day", String(10), nullable=False),
    Column("chat_transport", String(64)),  # a chat agent's run: the account and room it answers in
    Column("chat_room", String(255)),
    Column("node_id", Integer),  # the build node that ran it; NULL: the server itself
    Index("runs_by_item", "item_id"),
)

# DESIGN invariant 6: an item never has two live runs, enforced by the database itself.
# A partial unique index: both SQLite and PostgreSQL have them.
Index(
    "one_live_run_per_item",
    runs.c.item_id,
    unique=True,
    sqlite_where=runs.c.ended_at.is_(None),
    postgresql_where=runs.c.ended_at.is_(None),
)

# A room's conversation is one session: never two chat agent runs at once in one room.
Index(
    "one_live_run_per_room",
    runs.c.chat_transport,
    runs.c.chat_room,
    unique=True,
    sqlite_where=runs.c.ended_at.is_(None),
    postgresql_where=runs.c.ended_at.is_(None),
)

gate_results = Table(
    "gate_results",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("item_id", Integer, nullable=False),
    Column("run_id", String(64)),
    Column("context", String(16), nullable=False),
    Column("at", Float, nullable=False),
    Column("name", String(64), nullable=False),
    Column("command", Text, nullable=False),
    Column("exit_code", Integer),
    Column("timed_out", Boolean, nullable=False),
    Column("duration_s", Float, nullable=False),
    Column("output", Text, nullable=False),
    Column("truncated", Boolean, nullable=False),
    Index("gate_results_by_item", "item_id", "id"),
)

# Rules saved by a person's "always allow" (the project's own rules live in project.toml).
# Matched by permissions.rule_decision: ``tool`` may hold * (mcp__gangline__*), ``pattern`` is
# what the tool acts on (Bash's command prefix, a path glob) or NULL for any use of the tool.
permission_rules = Table(
    "permission_rules",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("tool", String(200), nullable=False),
    Column("pattern", Text),
    Column("decision", String(8), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("actor", String(64), nullable=False),
    sqlite_autoincrement=True,
)

# --- chat (gangline.chat) ---------------------------------------------------------------------

# One row per room a chat transport has spoken in: whether every message there is for the bot,
# and how far through the event log its notices have been put in the outbox.
chat_rooms = Table(
    "chat_rooms",
    metadata,
    Column("transport", String(64), primary_key=True),
    Column("room", String(255), primary_key=True),
    Column("ambient", Boolean),  # NULL: as project.toml says
    Column("notified_through", Integer),  # NULL: not yet started (starts from the end of the log)
    Column("agent_session", String(128)),  # the chat agent's session in this room; NULL: none (or reset)
)

# A person's messages to an item's coder, kept until a coder run takes them (run_id) and after.
messages = Table(
    "messages",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("item_id", Integer, ForeignKey("items.id", ondelete="CASCADE"), nullable=False),
    Column("actor", String(64), nullable=False),
    Column("text", Text, nullable=False),
    Column("comments", EVENT_DATA, nullable=False),  # [{path, line, text}]
    Column("created_at", Float, nullable=False),
    Column("run_id", String(64)),
    Index("messages_by_item", "item_id", "id"),
    sqlite_autoincrement=True,
)

# What gangline says in chat, written before it is sent and marked when it was: a transport that
# is down, or a server killed between the two, sends it later, under the same key, once.
chat_outbox = Table(
    "chat_outbox",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("transport", String(64), nullable=False),
    Column("room", String(255), nullable=False),
    Column("text", Text, nullable=False),
    Column("reply_to", String(255)),
    Column("request_id", String(32)),  # a permission request this message asks about
    Column("created_at", Float, nullable=False),
    Column("sent_at", Float),
    Column("message_id", String(255)),
    Column("failure", Text),  # why the platform refused it for good (then sent_at is when it did)
    Index("chat_outbox_unsent", "transport", "sent_at", "id"),
    sqlite_autoincrement=True,
)

# The messages a transport has taken up, so a message delivered again (a restart, a platform's
# retry) is never answered twice.
chat_seen = Table(
    "chat_seen",
    metadata,
    Column("transport", String(64), primary_key=True),
    Column("message_id", String(255), primary_key=True),
    Column("at", Float, nullable=False),
)

# --- build nodes (gangline.nodes) -------------------------------------------------------------

# Machines that lease agent runs. The credential is kept as its SHA-256 only.
nodes = Table(
    "nodes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("credential", String(64), nullable=False, unique=True),
    Column("labels", EVENT_DATA, nullable=False),  # ["gpu", ...]
    Column("slots", EVENT_DATA, nullable=False),  # {"coder": 2, "qa": 1}
    Column("clis", EVENT_DATA, nullable=False),  # {"claude": "2.0.1", ...}
    Column("joined_at", Float, nullable=False),
    Column("seen_at", Float, nullable=False),
    Column("draining", Boolean, nullable=False),
    sqlite_autoincrement=True,
)

# One-time join tokens (``gangline node token``), as their SHA-256; used_by: the node it made.
node_tokens = Table(
    "node_tokens",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("used_by", Integer),
)

# Runs waiting for a node, and what the node needs to start each (payload). ``epoch``: the lease
# that took it (NULL: still waiting).
offers = Table(
    "offers",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("item_id", Integer),
    Column("role", String(16), nullable=False),
    Column("cli", String(16), nullable=False),
    Column("labels", EVENT_DATA, nullable=False),
    Column("node_id", Integer),  # only this node may lease it (its session lives there)
    Column("payload", EVENT_DATA, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("epoch", Integer),
)

# Each lease of a run by a node. The epoch is the fencing token: every lease a larger one.
leases = Table(
    "leases",
    metadata,
    Column("epoch", Integer, primary_key=True),
    Column("run_id", String(64), nullable=False),
    Column("node_id", Integer, nullable=False),
    Column("granted_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("ended_at", Float),
    Column("end_reason", Text),
    Index("leases_by_run", "run_id"),
    Index("leases_by_node", "node_id", "ended_at"),
    sqlite_autoincrement=True,
)
