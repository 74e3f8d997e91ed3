"""One line of a run's transcript per agent event, said once for every door that shows a run to a person.

``line_of`` turns a typed event into spans of (tone, text): the text already plain
(``core.text``), the tone a style name a terminal may colour (rich's names) and chat ignores.
The CLI's live renderer prints them styled, ``gangline logs`` too; chat's ``logs N`` sends them
as plain lines. Deltas (streamed text) are the renderer's business, not a line's.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from gangline.core.events import (
    AgentError,
    ApiRetry,
    AssistantText,
    CommandExecution,
    FileChange,
    Gap,
    Malformed,
    NonObjectJson,
    ProcessStarted,
    RateLimit,
    RawOutput,
    Result,
    RunFinished,
    RunOutcome,
    SessionStarted,
    TodoList,
    ToolResult,
    ToolUse,
    UnknownEvent,
)
from gangline.core.text import plain

Span = tuple[str | None, str]  # (tone, plain text)
Line = list[Span]
ClockTime = Callable[[float], str]  # a reset time as the reader's clock shows it

_OUTCOME_TONE = {RunOutcome.SUCCEEDED: "bold green", RunOutcome.RATE_LIMITED: "bold yellow"}


def text_of(line: Line) -> str:
    """A line without its tones."""
    return "".join(text for _, text in line)


def line_of(ev: object, clock_time: ClockTime) -> Line | None:
    """The line a person reads for one event; None for events that are no line of their own."""
    for kinds, say in _SAYERS:
        if isinstance(ev, kinds):
            return say(ev, clock_time)
    return None


def _process(ev: ProcessStarted, _: ClockTime) -> Line:
    return [("dim", f"▶ started {plain(ev.argv[0].rsplit('/', 1)[-1])} (pid {ev.pid}) in {plain(ev.cwd)}")]


def _session(ev: SessionStarted, _: ClockTime) -> Line:
    about = plain(f"model {ev.model} · CLI {ev.cli_version} · {len(ev.tools)} tools")
    return [("cyan", f"● session {plain(ev.session_id)}"), (None, " "), ("dim", about)]


def _assistant(ev: AssistantText, _: ClockTime) -> Line:
    if ev.error:
        return [("red", f"● {plain(ev.text, multiline=True)}")]
    return [("bold", "●"), (None, f" {plain(ev.text, multiline=True)}")]


def _tool_use(ev: ToolUse, _: ClockTime) -> Line:
    args = plain(json.dumps(ev.input, ensure_ascii=False), limit=120)
    return [("magenta", f"⚙ {plain(ev.name)}"), (None, " "), ("dim", args)]


def _tool_result(ev: ToolResult, _: ClockTime) -> Line:
    return [("red" if ev.is_error else "dim", f"  ↳ {plain(ev.content, limit=160) or '(no output)'}")]


def _command(ev: CommandExecution, _: ClockTime) -> Line:
    code = f"exit {ev.exit_code}" if ev.exit_code is not None else plain(ev.status)
    return [("red" if ev.exit_code else "dim", f"  ↳ $ {plain(ev.command, limit=80)} ({code})")]


def _file_change(ev: FileChange, _: ClockTime) -> Line:
    files = ", ".join(f"{c.kind} {c.path}" for c in ev.changes)
    return [("dim" if ev.status == "completed" else "red", f"  ✎ {plain(files, limit=120)}")]


def _todo(ev: TodoList, _: ClockTime) -> Line:
    return [("dim", "☐ plan: " + plain(" · ".join(("✓ " if t.completed else "○ ") + t.text for t in ev.items)))]


def _agent_error(ev: AgentError, _: ClockTime) -> Line:
    return [("red" if ev.fatal else "yellow", f"⚠ {plain(ev.message, multiline=True)}")]


def _retry(ev: ApiRetry, _: ClockTime) -> Line:
    error = plain(ev.error) or "error"
    return [("yellow", f"↻ API {error} ({ev.error_status}); retry {ev.attempt}/{ev.max_retries}")]


def _rate_limit(ev: RateLimit, clock_time: ClockTime) -> Line:
    when = clock_time(ev.resets_at) if ev.resets_at else "unknown"
    kind = "hard block" if ev.hard_block else "warning"
    return [("yellow", f"⚠ rate limit {kind} ({plain(ev.status)}); resets at {when}")]


def _result(ev: Result, _: ClockTime) -> Line:
    cost = f"${ev.cost_usd:.4f}" if ev.cost_usd is not None else "$?"
    usage = ev.usage
    tokens = f"{usage.input_tokens} in / {usage.output_tokens} out" if usage else "? tokens"
    about = f"{ev.num_turns} turns · {tokens} · {cost} · {ev.duration_ms} ms"
    return [("bold", f"■ result {plain(ev.subtype)}"), (None, " "), ("dim", about)]


def _raw(ev: RawOutput, _: ClockTime) -> Line | None:
    return [("dim", f"│ {plain(ev.text, multiline=True)}")] if ev.text.strip() else None


def _malformed(ev: Malformed, _: ClockTime) -> Line:
    return [("yellow", f"⚠ malformed line ({ev.size} bytes): {plain(ev.reason)}")]


def _unknown(ev: UnknownEvent | NonObjectJson, _: ClockTime) -> Line:
    return [("yellow", f"? kept an event this version does not know: {plain(str(ev), limit=400)}")]


def _gap(ev: Gap, _: ClockTime) -> Line:
    return [("yellow", f"… fell behind after event {ev.after_id}; replaying from the log")]


def _finished(ev: RunFinished, _: ClockTime) -> Line:
    tone = _OUTCOME_TONE.get(ev.outcome, "bold red")
    return [(tone, f"■ run {ev.outcome.value}"), (None, f": {plain(ev.reason, multiline=True)}")]


_SAYERS: tuple[tuple[type | tuple[type, ...], Callable[..., Line | None]], ...] = (
    (ProcessStarted, _process), (SessionStarted, _session), (AssistantText, _assistant), (ToolUse, _tool_use),
    (ToolResult, _tool_result), (CommandExecution, _command), (FileChange, _file_change), (TodoList, _todo),
    (AgentError, _agent_error), (ApiRetry, _retry), (RateLimit, _rate_limit), (Result, _result), (RawOutput, _raw),
    (Malformed, _malformed), ((UnknownEvent, NonObjectJson), _unknown), (Gap, _gap), (RunFinished, _finished),
)  # fmt: skip
