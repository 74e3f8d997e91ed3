"""What the server and its build nodes say to each other over ``/node`` (SPEC.md "Build nodes").

A node's run's events travel as the run log's own lines (``Record``, one JSON object per
line), not as these models: the server appends them to its copy of the log as they are.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from gangline.core.events import RunOutcome
from gangline.core.nodes import LEASE_S, MAX_SLOTS, RENEW_S

EPOCH_HEADER = "X-Gangline-Epoch"  # an upload's or a push's lease
RUN_HEADER = "X-Gangline-Run"  # a push's run
DRAINING_HEADER = "X-Gangline-Draining"  # on an empty lease answer: "1" when the node is being drained


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NodeHello(_Strict):
    """What a node has: its labels, its slots per role, and the agent CLIs it found (kind -> version)."""

    labels: list[str] = Field(default_factory=list, max_length=32)
    slots: dict[str, int] = Field(default_factory=dict)
    clis: dict[str, str] = Field(default_factory=dict)


class JoinIn(NodeHello):
    token: str = Field(min_length=16, max_length=128)
    name: str = Field(min_length=1, max_length=64)


class JoinOut(_Strict):
    node: str
    credential: str  # kept by the node; the server keeps only its digest
    lease_s: float = LEASE_S
    renew_s: float = RENEW_S


class TokenOut(_Strict):
    token: str
    expires_at: float


class LeaseIn(_Strict):
    """A node asking for work: how many runs per role it is running now; wait up to ``wait_s`` for one."""

    busy: dict[str, int] = Field(default_factory=dict)
    wait_s: float = Field(default=0.0, ge=0.0, le=30.0)


class NodeRun(_Strict):
    """Everything a node needs to start a run (the server renders prompts and keeps every decision).

    ``resume`` is the session to resume, only on the node ``resume_node`` (where it lives);
    anywhere else the node starts afresh with ``fresh_prompt``. ``branch`` is the item's branch:
    the node fetches it, works on it, and (``push``) pushes it back with ``--force-with-lease``
    against ``base``, the commit the server recorded when it offered the run.
    """

    run_id: str
    item_id: int | None
    item_slug: str | None
    role: str
    profile: dict[str, Any]  # the AgentProfile, as project.toml gives it
    prompt: str
    fresh_prompt: str | None = None
    resume: str | None = None
    resume_node: str | None = None  # the name of the node the session lives on
    branch: str | None = None
    base: str | None = None
    push: bool = False
    mcp_token: str | None = None  # the run's own token for the server's /mcp (its tools, the permission prompt)
    gates: list[dict[str, Any]] = Field(default_factory=list)  # to run there after a coder ([nodes] gates = "node")
    # The hooks to run there, by point (after_create, before_run, after_run), each a list of GateSpec's fields.
    hooks: dict[str, list[dict[str, Any]]] = Field(default_factory=dict)
    env: dict[str, str] = Field(default_factory=dict)  # GANGLINE_* variables every process of the run carries


class LeaseOut(_Strict):
    run: NodeRun
    epoch: int
    expires_at: float
    lease_s: float = LEASE_S  # renew six times in this


class RenewIn(_Strict):
    epoch: int


class RenewOut(_Strict):
    """A renewed lease; ``stop``: the server wants the run stopped (a person, its budget), and why."""

    expires_at: float
    stop: str | None = None


class UploadOut(_Strict):
    taken: int  # the last record id the server has of the run
    stop: str | None = None


class FinishIn(_Strict):
    """How the run ended on the node (its ``RunSummary``), and the branch tip it pushed, if any."""

    epoch: int
    outcome: RunOutcome
    reason: str
    exit_code: int | None = None
    session_id: str | None = None
    usage: dict[str, int] | None = None
    cost_usd: float | None = None
    resets_at: float | None = None
    result_subtype: str | None = None
    result_text: str | None = None
    pushed: str | None = None
    dirty: list[str] = Field(default_factory=list, max_length=10_000)  # what the agent left uncommitted there
    gates: list[dict[str, Any]] | None = None  # the gates' results there ([nodes] gates = "node"), GateResult's fields
    hooks: dict[str, list[dict[str, Any]]] = Field(default_factory=dict)  # the hooks' results there, by point


class NodeOut(BaseModel):
    """A node as the board, ``gangline nodes`` and the REST API show it."""

    name: str
    labels: list[str]
    slots: dict[str, int] = Field(description=f"runs per role at once, each 0..{MAX_SLOTS}")
    clis: dict[str, str]
    joined_at: float
    seen_at: float
    live: bool = Field(description="it spoke within a lease's length")
    draining: bool
    runs: list[str] = Field(description="the runs it holds a lease on")
