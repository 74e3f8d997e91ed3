"""The rows gangline keeps, as plain frozen records: runs, events, gate results, ledger sums, rules.

The store builds them from SQL; everything above reads them. ``last_gates`` picks the latest
batch of gate results, as the board, ``gangline show`` and the agents' tools show it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from gangline.core.events import RunOutcome, Usage
from gangline.core.hooks import HOOK_POINTS
from gangline.core.profiles import Role

REASON_CHARS = 2000  # a hold's reason is shown on cards and in prompts: the head is what matters
LedgerKey = Literal["run", "item", "profile", "day"]
CHAT_LEDGER_KEY = "chat"  # the ledger's key, per item, for the chat agent's runs (which have no item)


def about(item_id: int | None) -> str:
    """What a run or a question is for, in a word: ``#7``, or ``chat`` for the chat agent's (no item)."""
    return f"#{item_id}" if item_id is not None else CHAT_LEDGER_KEY


@dataclass(frozen=True)
class NewRun:
    id: str
    item_id: int | None  # None: a chat agent's run
    role: Role
    profile: str
    attempt: int
    workspace: str
    log_path: str
    resumed_session: str | None = None
    chat_transport: str | None = None
    chat_room: str | None = None


@dataclass(frozen=True)
class RunEnd:
    outcome: RunOutcome
    reason: str
    session_id: str | None = None
    usage: Usage | None = None
    cost_usd: float | None = None


@dataclass(frozen=True)
class RunRow:
    id: str
    item_id: int | None  # None: a chat agent's run
    role: Role
    profile: str
    attempt: int
    workspace: str
    log_path: str
    resumed_session: str | None
    session_id: str | None
    pid: int | None
    pgid: int | None
    start_ticks: int | None
    started_at: float
    ended_at: float | None
    outcome: RunOutcome | None
    reason: str | None
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_usd: float
    chat_transport: str | None = None  # a chat agent's run: the account and room it answers in
    chat_room: str | None = None
    boot_id: str | None = None  # the machine boot its pid belongs to
    node_id: int | None = None  # the build node that ran it; None: the server itself

    @property
    def live(self) -> bool:
        return self.ended_at is None


@dataclass(frozen=True)
class EventRow:
    id: int
    at: float
    item_id: int | None
    run_id: str | None
    kind: str
    actor: str
    trigger: str | None
    from_stage: str | None
    from_hold: str | None
    to_stage: str | None
    to_hold: str | None
    reason: str | None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GateRow:
    id: int
    item_id: int
    run_id: str | None
    context: str
    at: float
    name: str
    command: str
    exit_code: int | None
    timed_out: bool
    duration_s: float
    output: str
    truncated: bool


@dataclass(frozen=True)
class LedgerRow:
    key: str
    runs: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_usd: float


@dataclass(frozen=True)
class PermissionRuleRow:
    id: int
    tool: str
    pattern: str | None
    decision: str  # allow | deny
    created_at: float
    actor: str


def last_gates(rows: list[GateRow]) -> list[GateRow]:
    """The last batch of gate results: the trailing rows of one run and context, no gate twice (hooks left out)."""
    batch: list[GateRow] = []
    for row in reversed([row for row in rows if row.context not in HOOK_POINTS]):
        if batch and ((row.run_id, row.context) != (batch[0].run_id, batch[0].context) or
                      any(g.name == row.name for g in batch)):  # fmt: skip
            break
        batch.insert(0, row)
    return batch


def last_hooks(rows: list[GateRow]) -> list[GateRow]:
    """Each hook's latest result (its context is the point it ran at), in the order they last ran."""
    latest = {row.name: row for row in rows if row.context in HOOK_POINTS}
    return sorted(latest.values(), key=lambda row: row.id)


@dataclass(frozen=True)
class ChatRoomRow:
    """A room a chat transport has spoken in: its ambient setting (None: project.toml's) and its notice cursor."""

    transport: str
    room: str
    ambient: bool | None
    notified_through: int | None
    agent_session: str | None = None  # the chat agent's session here (None: a new one at the next message)


@dataclass(frozen=True)
class OutboxRow:
    """One message gangline says in chat, kept until it is sent; ``id`` is its delivery key."""

    id: int
    transport: str
    room: str
    text: str
    reply_to: str | None
    request_id: str | None
    created_at: float
    sent_at: float | None
    message_id: str | None
    failure: str | None = None  # why the platform refused it for good


@dataclass(frozen=True)
class Check:
    """One finding of ``gangline doctor``: what was checked, whether it is fine, what was found, how to fix it."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
