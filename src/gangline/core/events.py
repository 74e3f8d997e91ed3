"""The typed events a run produces: agent events parsed from the CLI, and run lifecycle events.

Every event is a ``msgspec.Struct`` tagged by ``kind``; a ``Record`` gives it its id, time
and, for events parsed from a line of CLI output, that line's raw JSON verbatim. Nothing
after the parser handles raw dicts.
"""

from __future__ import annotations

import enum
from typing import Any

import msgspec


class RunOutcome(enum.StrEnum):
    """How a run ended."""

    SUCCEEDED = "succeeded"  # the CLI reported success and exited 0
    FAILED = "failed"  # the CLI reported an error result, or exited non-zero after one
    TIMED_OUT = "timed_out"  # the run exceeded its total time limit
    STALLED = "stalled"  # no output within the inactivity timeout
    RATE_LIMITED = "rate_limited"  # hard rate-limit block; resume after ``resets_at``
    STOPPED = "stopped"  # a person or shutdown asked it to stop
    CRASHED = "crashed"  # the CLI died without a result (a signal, or an exit mid-session)
    # The CLI exited on its own before starting a session: its configuration, flags or
    # authentication; retrying cannot fix it, so the item is blocked at once.
    REFUSED = "refused"


class _Event(msgspec.Struct, tag_field="kind", omit_defaults=True, gc=False):
    pass


class Usage(msgspec.Struct, omit_defaults=True, gc=False):
    """Tokens, the same for every CLI (SPEC.md "One event model").

    ``input_tokens`` excludes the cached ones (``cache_read_input_tokens``, and the cache writes
    ``cache_creation_input_tokens``); ``output_tokens`` includes the reasoning ones, which
    ``reasoning_output_tokens`` counts again on their own.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    reasoning_output_tokens: int = 0


class McpServer(msgspec.Struct, gc=False):
    name: str
    status: str


# --- lifecycle -----------------------------------------------------------------------------


class ProcessStarted(_Event, tag="process_started"):
    """Recorded before the first byte is read, so a restarted server can reap the group."""

    pid: int
    pgid: int
    start_ticks: int  # field 22 of /proc/<pid>/stat: tells a reused pid from ours
    argv: list[str]
    cwd: str
    env_names: list[str]  # names only: values may be secrets


class EndedProcess(msgspec.Struct, gc=False):
    pid: int
    command: str  # its command line, cut at 200 characters


class ProcessesEnded(_Event, tag="processes_ended"):
    """Processes the run left behind when its CLI ended, found by its marker or its cgroup, and killed."""

    how: str  # "marker" (the run's variable in their environment) or "cgroup"
    processes: list[EndedProcess] = []


class RunFinished(_Event, tag="run_finished"):
    outcome: RunOutcome
    reason: str
    exit_code: int | None = None
    signal: int | None = None
    session_id: str | None = None
    cost_usd: float | None = None
    usage: Usage | None = None
    resets_at: float | None = None
    last_lines: list[str] = []


class Gap(_Event, tag="gap"):
    """Sent to a subscriber that fell behind, as its last event: replay from ``after_id``."""

    after_id: int
    dropped_from_id: int


# --- parsed from the agent CLI -------------------------------------------------------------


class SessionStarted(_Event, tag="session_started"):
    session_id: str
    model: str | None = None
    cli_version: str | None = None
    cwd: str | None = None
    permission_mode: str | None = None
    tools: list[str] = []
    mcp_servers: list[McpServer] = []


class TextDelta(_Event, tag="text_delta"):
    text: str
    index: int = 0
    parent_tool_use_id: str | None = None


class ThinkingDelta(_Event, tag="thinking_delta"):
    text: str
    index: int = 0
    parent_tool_use_id: str | None = None


class ToolInputDelta(_Event, tag="tool_input_delta"):
    partial_json: str
    index: int = 0
    parent_tool_use_id: str | None = None


class BlockStarted(_Event, tag="block_started"):
    index: int
    block_type: str
    tool_name: str | None = None
    tool_use_id: str | None = None
    parent_tool_use_id: str | None = None


class MessageStarted(_Event, tag="message_started"):
    message_id: str | None
    model: str | None = None


class MessageDelta(_Event, tag="message_delta"):
    """End of one model message: its stop reason and token usage so far."""

    stop_reason: str | None
    usage: Usage | None = None


class StreamMarker(_Event, tag="stream_marker"):
    """A partial-message event that carries nothing to show (block/message stop, signature)."""

    event: str
    index: int | None = None


class AssistantText(_Event, tag="assistant_text"):
    """A complete text block; ``error`` is set on the CLI's synthetic API-error messages."""

    text: str
    message_id: str | None = None
    error: str | None = None
    parent_tool_use_id: str | None = None


class AssistantThinking(_Event, tag="assistant_thinking"):
    text: str
    message_id: str | None = None


class ToolUse(_Event, tag="tool_use"):
    tool_use_id: str
    name: str
    input: dict[str, Any]
    parent_tool_use_id: str | None = None


class ToolResult(_Event, tag="tool_result"):
    tool_use_id: str
    content: str
    is_error: bool = False
    parent_tool_use_id: str | None = None


class CommandExecution(_Event, tag="command"):
    """A shell command the agent ran and how it ended; ``tool_use_id`` is the call it answers.

    ``exit_code`` is None when the CLI did not say (Claude Code reports only success or error).
    """

    tool_use_id: str
    command: str
    exit_code: int | None = None
    status: str = "completed"  # completed | failed | declined (the CLI's word)


class FileEdit(msgspec.Struct, gc=False):
    path: str
    kind: str  # add | update | delete


class FileChange(_Event, tag="file_change"):
    """Files the agent changed through its own tool; ``tool_use_id`` is the call it answers."""

    tool_use_id: str
    changes: list[FileEdit]
    status: str = "completed"


class TodoItem(msgspec.Struct, gc=False):
    text: str
    completed: bool


class TodoList(_Event, tag="todo_list"):
    """The agent's own plan, as it stands now (each event replaces the last)."""

    items: list[TodoItem]


class AgentError(_Event, tag="agent_error"):
    """An error the CLI reported outside a result: a warning it goes on after, or a fatal one."""

    message: str
    fatal: bool = False


class UserText(_Event, tag="user_text"):
    text: str
    parent_tool_use_id: str | None = None


class ApiRetry(_Event, tag="api_retry"):
    attempt: int
    max_retries: int | None = None
    retry_delay_ms: float | None = None
    error_status: int | None = None
    error: str | None = None


class RateLimit(_Event, tag="rate_limit"):
    """``hard_block`` parks the run until ``resets_at`` (epoch seconds)."""

    status: str
    hard_block: bool
    resets_at: float | None = None
    reset_assumed: bool = False  # the CLI gave no reset time; ``resets_at`` is now + 5 min
    limit_type: str | None = None
    utilization: float | None = None


class Result(_Event, tag="result"):
    subtype: str
    is_error: bool
    result: str | None = None
    num_turns: int | None = None
    duration_ms: float | None = None
    cost_usd: float | None = None
    usage: Usage | None = None
    stop_reason: str | None = None
    terminal_reason: str | None = None
    api_error_status: int | None = None
    errors: list[str] = []
    permission_denials: int = 0
    session_id: str | None = None


class SystemNotice(_Event, tag="system"):
    """A ``system`` event with no typed meaning yet (status, task progress, ...)."""

    subtype: str
    detail: str | None = None


class RawOutput(_Event, tag="raw_output"):
    """A line that is not JSON, with ANSI escapes stripped."""

    text: str


class NonObjectJson(_Event, tag="non_object"):
    """A line that is valid JSON but not an object; the raw line holds the value."""

    json_type: str


class UnknownEvent(_Event, tag="unknown"):
    """A JSON object whose ``type`` (or shape) this parser does not know; the raw line holds it."""

    type: str | None
    reason: str | None = None


class Malformed(_Event, tag="malformed"):
    """A line too long to keep, or one that looks like JSON but does not parse."""

    reason: str
    size: int
    head: str


Event = (
    ProcessStarted
    | ProcessesEnded
    | RunFinished
    | Gap
    | SessionStarted
    | TextDelta
    | ThinkingDelta
    | ToolInputDelta
    | BlockStarted
    | MessageStarted
    | MessageDelta
    | StreamMarker
    | AssistantText
    | AssistantThinking
    | ToolUse
    | ToolResult
    | UserText
    | CommandExecution
    | FileChange
    | TodoList
    | AgentError
    | ApiRetry
    | RateLimit
    | Result
    | SystemNotice
    | RawOutput
    | NonObjectJson
    | UnknownEvent
    | Malformed
)


NO_RAW = msgspec.Raw()  # empty: the record was not parsed from a line of output


class Record(msgspec.Struct, omit_defaults=True, gc=False):
    """One event as stored and broadcast: id (monotonic per run), wall time, event, raw line.

    ``raw`` is the CLI's line verbatim when it was JSON, the line as a JSON string when it
    was not, and empty (falsy, omitted from the log) for events gangline made itself.
    """

    id: int
    ts: float
    event: Event
    raw: msgspec.Raw = NO_RAW
