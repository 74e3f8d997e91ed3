"""The wire form of every record: what REST answers, the MCP tools return and ``--json`` prints.

One model per record, defined once: a door serialises these and never builds its own dict, so
an item looks the same to the board, to a person's assistant and to a script reading the CLI.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, JsonValue, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from gangline.core.disk import DiskOut
from gangline.core.events import RunOutcome
from gangline.core.items import Criterion, Item, ItemDraft, Kind
from gangline.core.orders import ItemAction, actions_for
from gangline.core.profiles import QaMode, Role
from gangline.core.records import EventRow, GateRow, LedgerKey, RunRow, about
from gangline.core.rules import Decision, PermissionRequest
from gangline.core.stages import Hold, Stage

# --- items -------------------------------------------------------------------------------------


class RunOut(BaseModel):
    """One agent attempt on one item, and what it used."""

    id: str
    item_id: int | None  # None: a chat agent's run
    role: Role
    profile: str
    attempt: int
    workspace: str
    live: bool
    started_at: float
    ended_at: float | None
    outcome: RunOutcome | None
    reason: str | None
    session_id: str | None
    resumed_session: str | None
    pid: int | None
    pgid: int | None
    node_id: int | None = None  # the build node it runs on; None: the server (or a gangline run) on this machine
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_usd: float

    @classmethod
    def of(cls, run: RunRow) -> RunOut:
        return cls.model_validate(run, from_attributes=True)

    @property
    def about(self) -> str:
        """What the run is for, in a word: ``#7``, or ``chat`` for the chat agent's."""
        return about(self.item_id)


class Activity(BaseModel):
    """What an item is doing, as the board shows it on the card.

    ``state``: running / throttled (an agent is on it; throttled while its model API holds it
    back), working (the server itself is on it: gates, its own review, the merge),
    parked (a hard rate limit: it resumes at ``until``), blocked / review_hold /
    merge_failure (a hold), frozen, scheduled (it starts at ``until``), waiting (its stage has
    work to do but no agent yet: a free slot, a dependency), or idle.
    """

    state: Literal[
        "running", "throttled", "working", "parked", "blocked", "review_hold", "merge_failure", "frozen",
        "scheduled", "waiting", "idle",
    ]  # fmt: skip
    run_id: str | None = None
    profile: str | None = None
    role: Role | None = None
    since: float | None = None
    until: float | None = None
    note: str | None = None


class ItemOut(BaseModel):
    """A work item: what a person wrote, where the pipeline has it, and what it cost so far."""

    id: int
    slug: str
    name: str  # <id>-<slug>: its branch is gangline/<name>
    kind: Kind
    title: str
    body: str
    criteria: list[Criterion]
    depends_on: list[int]
    priority: int
    pinned_agent: str | None
    qa_mode: QaMode | None
    stage: Stage
    hold: Hold | None
    hold_reason: str | None
    frozen: bool
    retries: int
    merge_attempts: int
    session_id: str | None
    feedback: str | None
    report: str | None = Field(default=None, description="A spike's written report: its result (never merged).")
    start_after: float | None  # times are seconds since the epoch
    parked_until: float | None
    archive_at: float | None
    merged_commit: str | None
    merged_tip: str | None
    created_at: float
    updated_at: float
    cost_usd: float
    actions: list[ItemAction] = Field(description="What a person may do to it now (POST /api/items/{id}/{action}).")
    activity: Activity = Field(description="What is happening to it, for the board.")

    @classmethod
    def of(cls, item: Item, cost_usd: float = 0.0, activity: Activity | None = None) -> ItemOut:
        state = item.state
        return cls(
            **{name: getattr(item, name) for name in _COPIED},
            name=item.name,
            criteria=list(item.criteria),
            depends_on=list(item.depends_on),
            stage=state.stage,
            hold=state.hold,
            hold_reason=state.hold_reason,
            frozen=state.frozen,
            cost_usd=cost_usd,
            actions=actions_for(state, item.kind),
            activity=activity or Activity(state="idle"),
        )


_DERIVED = {"name", "criteria", "depends_on", "stage", "hold", "hold_reason", "frozen", "cost_usd"}
_DERIVED |= {"actions", "activity"}
_COPIED = [name for name in ItemOut.model_fields if name not in _DERIVED]


class EventOut(BaseModel):
    """One row of the pipeline's event log."""

    id: int
    at: float
    kind: str
    actor: str
    item_id: int | None
    run_id: str | None
    trigger: str | None
    from_stage: str | None
    from_hold: str | None
    to_stage: str | None
    to_hold: str | None
    reason: str | None
    data: dict[str, JsonValue]

    @classmethod
    def of(cls, row: EventRow) -> EventOut:
        return cls.model_validate(row, from_attributes=True)


class GateOut(BaseModel):
    """One gate's last result on the item."""

    name: str
    command: str
    context: str
    run_id: str | None
    at: float
    passed: bool
    exit_code: int | None
    timed_out: bool
    duration_s: float
    output: str
    truncated: bool

    @classmethod
    def of(cls, row: GateRow) -> GateOut:
        passed = row.exit_code == 0 and not row.timed_out
        return cls.model_validate({**row.__dict__, "passed": passed})


class ItemDetail(ItemOut):
    """An item with its branch, transitions, runs, last gate results and each hook's last result."""

    branch: str
    transitions: list[EventOut]
    runs: list[RunOut]
    gates: list[GateOut]
    hooks: list[GateOut] = []  # context: the point it ran at (after_create, before_run, after_run, before_remove)


class NewItem(ItemDraft):
    """A draft, and optionally when to start it: an ISO date-time with a zone, or seconds since the epoch."""

    start_after: AwareDatetime | None = None

    def draft(self) -> ItemDraft:
        """The item as a person wrote it, without when to start it."""
        return ItemDraft.model_validate({name: value for name, value in self if name != "start_after"})


class ItemQuery(BaseModel):
    """Which items a listing shows: by default every one but the archived, oldest first."""

    stages: list[Stage] = Field(default_factory=list, description="Only these stages (none: all).")
    hold: Hold | None = Field(default=None, description="Only items held this way.")
    kind: Kind | None = None
    q: str | None = Field(default=None, max_length=200, description="Text the title contains (any case).")
    include_archived: bool = Field(default=False, description="Also archived items (when no stage is named).")

    def matches(self, item: Item) -> bool:
        if not self.stages and not self.include_archived and item.stage is Stage.ARCHIVED:
            return False
        if self.hold is not None and item.state.hold is not self.hold:
            return False
        if self.kind is not None and item.kind is not self.kind:
            return False
        return not self.q or self.q.casefold() in item.title.casefold()


class LogPage(BaseModel):
    """A page of a run's event log; ask again with ``after=next_after`` while ``more`` (or while it is live)."""

    run_id: str
    live: bool
    more: bool
    next_after: int
    records: list[dict[str, JsonValue]] = Field(description="Records as the run log stores them: id, ts, event, raw.")


class ActionBody(BaseModel):
    reason: str | None = Field(default=None, max_length=20_000, description="Why; a rejection's is the coder's prompt.")
    by: int | None = Field(default=None, ge=1, le=2**53, description="supersede: the item that does it instead.")


class ActionOrder(ActionBody):
    """A person's action on an item, and why (the MCP tools' and the CLI's form of ``POST .../{action}``)."""

    action: ItemAction


class CostQuery(BaseModel):
    by: LedgerKey = Field(default="item", description="Sum per run, item, profile or UTC day.")
    item_id: int | None = Field(default=None, ge=1, description="Only this item's runs.")


# --- the pipeline ------------------------------------------------------------------------------


TimerKind = Literal["start_after", "parked_until", "archive_at"]


class Timer(BaseModel):
    """Something the orchestrator will do by itself at ``at`` (seconds since the epoch)."""

    item_id: int
    kind: TimerKind
    at: float


class OrchestratorOut(BaseModel):
    running: bool
    jobs: int  # items the orchestrator is working on
    runs: int  # agent processes it supervises


class ConfigOut(BaseModel):
    """The configuration in force: when it was read, and an edit of project.toml refused since (file, key, reason)."""

    loaded_at: float
    error: str | None = None  # the last good configuration stays in force while this is set
    refused_at: float | None = None
    restart_needed: list[str] = Field(default=[], description="Keys edited that take effect at the next start.")


class StatusOut(BaseModel):
    """The pipeline at a glance."""

    stages: dict[Stage, int]
    holds: dict[Hold, int]
    frozen: int
    live_runs: list[RunOut]
    timers: list[Timer] = Field(description="The next 20, soonest first.")
    orchestrator: OrchestratorOut
    config: ConfigOut | None = Field(default=None, description="A running server's; none without one.")
    disk: DiskOut | None = Field(default=None, description="At a running server's last retention sweep.")
    last_event_id: int


class CostRow(BaseModel):
    key: str  # the run id, item id, profile name or UTC day (YYYY-MM-DD)
    runs: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_usd: float


class CostsOut(BaseModel):
    by: LedgerKey
    rows: list[CostRow]
    total_usd: float


# --- permission requests -----------------------------------------------------------------------


class PermissionRequestOut(BaseModel):
    """An agent's tool call waiting for a person; it is denied at ``expires_at`` if nobody answers."""

    id: str
    run_id: str
    item_id: int | None  # None: the chat agent asks
    tool_name: str
    input: dict[str, Any]
    tool_use_id: str | None
    created_at: float  # seconds since the epoch
    expires_at: float | None

    @classmethod
    def of(cls, request: PermissionRequest) -> PermissionRequestOut:
        return cls.model_validate(request, from_attributes=True)

    @property
    def about(self) -> str:
        """Whose agent asks, in a word: ``#7``, or ``chat`` for the chat agent."""
        return about(self.item_id)


class PermissionAnswer(BaseModel):
    decision: Decision = Field(description="allow, deny, or always_allow (allow, and save a rule for such calls).")
    message: str | None = Field(
        default=None, max_length=2000, description="For deny: why, in words the agent can act on."
    )
    updated_input: dict[str, Any] | None = Field(
        default=None, description="For allow: keys that replace the tool's input keys (say, a changed command)."
    )

    @field_validator("updated_input")
    @classmethod
    def _input_only_when_allowing(cls, value: dict[str, Any] | None, info: ValidationInfo) -> dict[str, Any] | None:
        if value is not None and info.data.get("decision") is Decision.DENY:
            raise PydanticCustomError("deny_with_input", "goes with allow or always_allow, not deny")
        return value


class PermissionAnswered(BaseModel):
    request: PermissionRequestOut
    decision: Decision
    rule: str | None = Field(description='The rule "always allow" saved, like Bash(git status:*).')


# --- the server --------------------------------------------------------------------------------


class HealthOut(BaseModel):
    ok: bool
    db: bool  # the database answers
    orchestrator: bool  # the pipeline is being driven


class LoginLink(BaseModel):
    """A one-time link that signs a browser in to the board (``POST /api/login-links``, ``gangline login``)."""

    url: str


class TimerIn(BaseModel):
    """When a backlog item should start: ``HH:MM`` (the next such time), ``+30m``/``+2h``/``+1d``, or a
    date-time; a time without an offset is the project's time zone's (``time_zone`` in project.toml)."""

    model_config = ConfigDict(extra="forbid")
    when: str = Field(min_length=1, max_length=64)
