"""Scripted fake-agent scenarios: the JSON model, the per-directory attempt counter, and stream-json line builders.

A scenario is ``{"attempts": [[step, ...], ...]}``; the fake CLI (``gangline.fake.cli --scenario``)
plays one attempt per invocation. Each step is an object with one action key (``say``, ``write``,
``run``, ...) plus that action's options; every string in a step is a ``str.format_map``
template over ``item_id``, ``item_slug``, ``run_id``, ``role`` and ``attempt`` (write ``{{``
and ``}}`` for literal braces, in shell commands too). The steps:

    {"say": text}                           a streamed text message
    {"write"|"append": rel_path, "text": t} a Write tool call on a file under the working directory
    {"run": shell_command}                  a Bash tool call (/bin/sh -c, in the working directory)
    {"commit": message}                     ``git add -A`` and a commit by "fake agent", as a Bash call
    {"usage": {"input_tokens", "output_tokens"}, "model": m}   a message reporting only usage
    {"cost": usd}                           the result's total_cost_usd (default: the tokens at list price)
    {"final_json": object}                  said, and the result text is exactly that JSON
    {"result": {"subtype", "is_error", "errors", "terminal_reason"}}   override the final result
    {"rate_limit": {"resets_in_s", "limit_type"}}   a hard OAuth rate limit, error result, exit 1
    {"crash": "SIGKILL"|"SIGSEGV"|"SIGABRT"|"SIGTERM"}, {"exit": n}, {"hang": true}   end here
    {"wait_for_file": path, "timeout_s": 30}   block until the file exists; exit 9 on timeout
    {"sleep": seconds}

The line builders mirror the shapes Claude Code 2.1.x prints with ``--include-partial-messages``
(REAL_CLI.md section 5 and the recorded transcripts), so gangline's parser reads them as it reads the real CLI.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal, get_args

import msgspec

from gangline.core.errors import ConfigError

DEFAULT_MODEL = "claude-sonnet-4-5"
FAKE_VERSION = "gangline-fake"
PLACEHOLDERS = ("item_id", "item_slug", "run_id", "role", "attempt")
_ENV_NAMES = {name: f"GANGLINE_{name.upper()}" for name in PLACEHOLDERS if name != "attempt"}
_PROBE: dict[str, object] = {"item_id": "1", "item_slug": "item", "run_id": "run", "role": "coder", "attempt": 1}
_TOOLS = ["Task", "Bash", "Edit", "Glob", "Grep", "NotebookEdit", "Read", "TodoWrite", "WebFetch", "WebSearch", "Write"]
# $/token (input, output) as the CLI bills them; an unknown model is billed like Opus.
_PRICES = {"haiku": (1e-6, 5e-6), "sonnet": (3e-6, 15e-6)}
_UNKNOWN_PRICE = (5e-6, 25e-6)

NonNegative = Annotated[float, msgspec.Meta(ge=0)]
Tokens = Annotated[int, msgspec.Meta(ge=0)]


# --- the steps ----------------------------------------------------------------------------


class _Step(msgspec.Struct, forbid_unknown_fields=True):
    pass


def _check_relative(path: str) -> None:
    # Raised inside __post_init__, msgspec reports it as a validation error at this step.
    parts = PurePosixPath(path).parts
    if not path or "\0" in path or PurePosixPath(path).is_absolute() or ".." in parts:
        raise ValueError(f"expected a relative path inside the working directory, got {path!r}")


class Say(_Step):
    say: str


class Write(_Step):
    write: str
    text: str

    def __post_init__(self) -> None:
        _check_relative(self.write)


class Append(_Step):
    append: str
    text: str

    def __post_init__(self) -> None:
        _check_relative(self.append)


class Run(_Step):
    run: Annotated[str, msgspec.Meta(min_length=1)]


class Commit(_Step):
    commit: Annotated[str, msgspec.Meta(min_length=1)]


class TokenUsage(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    input_tokens: Tokens
    output_tokens: Tokens
    cache_creation_input_tokens: Tokens = 0
    cache_read_input_tokens: Tokens = 0


class UsageReport(_Step):
    usage: TokenUsage
    model: str = DEFAULT_MODEL


class Cost(_Step):
    cost: NonNegative


class RateLimitSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    resets_in_s: NonNegative
    limit_type: str = "five_hour"


class RateLimited(_Step):
    rate_limit: RateLimitSpec


class FinalJson(_Step):
    final_json: dict[str, Any]


class ResultSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    subtype: Annotated[str, msgspec.Meta(min_length=1)]
    is_error: bool
    errors: tuple[str, ...] = ()
    terminal_reason: str | None = None


SUCCESS = ResultSpec("success", is_error=False, terminal_reason="completed")


class ResultOverride(_Step):
    result: ResultSpec


class Crash(_Step):
    crash: Literal["SIGKILL", "SIGSEGV", "SIGABRT", "SIGTERM"]


class Exit(_Step):
    exit: Annotated[int, msgspec.Meta(ge=0, le=255)]


class Hang(_Step):
    hang: Literal[True]


class WaitForFile(_Step):
    wait_for_file: Annotated[str, msgspec.Meta(min_length=1)]
    timeout_s: Annotated[float, msgspec.Meta(gt=0)] = 30.0


class Sleep(_Step):
    sleep: Annotated[float, msgspec.Meta(ge=0, le=3600)]


Step = (
    Say
    | Write
    | Append
    | Run
    | Commit
    | UsageReport
    | Cost
    | RateLimited
    | FinalJson
    | ResultOverride
    | Crash
    | Exit
    | Hang
    | WaitForFile
    | Sleep
)
# A step's action key is its first field.
STEP_KINDS: dict[str, type[Step]] = {cls.__struct_fields__[0]: cls for cls in get_args(Step)}
ENDS_PROCESS = (RateLimited, Crash, Exit, Hang)


# --- loading ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """A validated scenario; ``steps`` formats one attempt for one invocation."""

    path: Path
    attempts: tuple[tuple[dict[str, Any], ...], ...]

    def steps(self, attempt: int, context: Mapping[str, object]) -> list[Step]:
        """The steps of 1-based invocation ``attempt`` (the last attempt repeats)."""
        index = min(attempt, len(self.attempts)) - 1
        return [_step(self.path, index, j, raw, context) for j, raw in enumerate(self.attempts[index])]


def load_scenario(path: Path) -> Scenario:
    """Read and validate every attempt; ConfigError names the file and the step."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(str(path), f"cannot read the scenario: {err}") from err
    except json.JSONDecodeError as err:
        raise ConfigError(str(path), f"not JSON: {err}") from err
    if not isinstance(data, dict) or set(data) != {"attempts"}:
        raise ConfigError(str(path), 'expected an object with one key, "attempts"')
    attempts = data["attempts"]
    if not isinstance(attempts, list) or not attempts or not all(isinstance(a, list) for a in attempts):
        raise ConfigError(f"{path}: attempts", "expected a non-empty list of lists of steps")
    for i, steps in enumerate(attempts):
        checked = [_step(path, i, j, raw, _PROBE) for j, raw in enumerate(steps)]
        for j, step in enumerate(checked[:-1]):
            if isinstance(step, ENDS_PROCESS):
                kind = _kind(steps[j])
                raise ConfigError(f"{path}: attempts[{i}][{j + 1}]", f"never runs: the {kind!r} step before it ends")
    return Scenario(path, tuple(tuple(steps) for steps in attempts))


def context_from_env(env: Mapping[str, str], attempt: int) -> dict[str, object]:
    context: dict[str, object] = {name: env.get(var, "") for name, var in _ENV_NAMES.items()}
    context["attempt"] = attempt
    return context


def _kind(raw: dict[str, Any]) -> str:
    return next(k for k in raw if k in STEP_KINDS)


def _step(path: Path, i: int, j: int, raw: object, context: Mapping[str, object]) -> Step:
    where = f"attempts[{i}][{j}]"
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: {where}", f"expected a step object, got {type(raw).__name__}")
    kinds = [k for k in raw if k in STEP_KINDS]
    if len(kinds) != 1:
        found = ", ".join(repr(k) for k in raw) or "no keys"
        raise ConfigError(f"{path}: {where}", f"expected exactly one of {', '.join(STEP_KINDS)}; found {found}")
    try:
        return msgspec.convert(_format(raw, context), STEP_KINDS[kinds[0]], strict=True)
    except msgspec.ValidationError as err:
        raise ConfigError(f"{path}: {where} ({kinds[0]})", str(err).replace("`$", f"`{where}")) from err
    except (KeyError, IndexError, AttributeError, ValueError) as err:
        message = f"bad placeholder {err}; known: {', '.join(PLACEHOLDERS)} (write {{{{ }}}} for a literal brace)"
        raise ConfigError(f"{path}: {where} ({kinds[0]})", message) from err


def _format(value: Any, context: Mapping[str, object]) -> Any:
    if isinstance(value, str):
        return value.format_map(context)
    if isinstance(value, dict):
        return {k: _format(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [_format(v, context) for v in value]
    return value


# --- the attempt counter ------------------------------------------------------------------


def next_attempt(scenario: Path, cwd: Path, state_dir: Path | None = None) -> int:
    """Count one more invocation of ``scenario`` in ``cwd``; return its 1-based number.

    The count lives in ``<scenario>.state/<sha256(realpath(cwd))[:16]>`` unless ``state_dir``
    is given. A lock serialises concurrent invocations; the write is atomic (rename).
    """
    folder = state_dir or Path(f"{scenario.absolute()}.state")
    key = hashlib.sha256(os.path.realpath(cwd).encode()).hexdigest()[:16]
    counter = folder / key
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / f"{key}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            done = int(counter.read_text()) if counter.exists() else 0
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{key}.")
            with os.fdopen(fd, "w") as out:
                out.write(f"{done + 1}\n")
            os.replace(tmp, counter)
    except (OSError, ValueError) as err:
        raise ConfigError(str(counter), f"cannot keep the attempt counter ({err}); pass --scenario-state DIR") from err
    return done + 1


# --- stream-json line builders ------------------------------------------------------------


def _uid() -> str:
    return str(uuid.uuid4())


def _timestamp() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"


def _chunks(text: str, parts: int = 3) -> list[str]:
    size = max(1, -(-len(text) // parts))
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def _clock(epoch: int) -> str:
    t = time.gmtime(epoch)
    hour, suffix = t.tm_hour % 12 or 12, "am" if t.tm_hour < 12 else "pm"
    return f"{hour}:{t.tm_min:02d}{suffix}" if t.tm_min else f"{hour}{suffix}"


def _add(a: TokenUsage, b: TokenUsage) -> TokenUsage:
    return TokenUsage(
        a.input_tokens + b.input_tokens,
        a.output_tokens + b.output_tokens,
        a.cache_creation_input_tokens + b.cache_creation_input_tokens,
        a.cache_read_input_tokens + b.cache_read_input_tokens,
    )


def model_cost(model: str, used: TokenUsage) -> float:
    price_in, price_out = next((p for name, p in _PRICES.items() if name in model), _UNKNOWN_PRICE)
    return used.input_tokens * price_in + used.output_tokens * price_out


def _usage(u: TokenUsage) -> dict[str, Any]:
    return {
        "input_tokens": u.input_tokens,
        "cache_creation_input_tokens": u.cache_creation_input_tokens,
        "cache_read_input_tokens": u.cache_read_input_tokens,
        "output_tokens": u.output_tokens,
    }


def _api_message(mid: str, model: str, content: list[dict[str, Any]], usage: dict[str, Any]) -> dict[str, Any]:
    # An assistant message as the CLI forwards it: stop_reason is null until message_delta.
    return {
        "id": mid,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": None,
        "stop_sequence": None,
        "usage": usage,
    }


Line = dict[str, Any]


@dataclass
class Stream:
    """Builds the lines of one session and keeps its turn and token totals."""

    session_id: str
    model: str
    cwd: str
    turns: int = 0
    tokens: dict[str, TokenUsage] = field(default_factory=dict)

    def _line(self, obj: Line) -> Line:
        return {**obj, "session_id": self.session_id, "uuid": _uid()}

    def _event(self, event: Line) -> Line:
        return self._line({"type": "stream_event", "event": event, "parent_tool_use_id": None})

    def init(self, permission_mode: str) -> Line:
        return self._line(
            {
                "type": "system",
                "subtype": "init",
                "cwd": self.cwd,
                "tools": _TOOLS,
                "mcp_servers": [],
                "model": self.model,
                "permissionMode": permission_mode,
                "apiKeySource": "none",
                "claude_code_version": FAKE_VERSION,
                "output_style": "default",
            }
        )

    def text_message(self, text: str) -> list[Line]:
        deltas = [{"type": "text_delta", "text": chunk} for chunk in _chunks(text)]
        return self._message({"type": "text", "text": ""}, deltas, {"type": "text", "text": text}, "end_turn", text)

    def tool_message(self, name: str, tool_input: dict[str, Any]) -> tuple[str, list[Line]]:
        """A message whose one block calls ``name``; returns the tool_use id for its result."""
        tool_id = f"toolu_fake_{uuid.uuid4().hex[:24]}"
        args = json.dumps(tool_input, ensure_ascii=False)
        deltas = [{"type": "input_json_delta", "partial_json": p} for p in ["", *_chunks(args)]]
        start: Line = {"type": "tool_use", "id": tool_id, "name": name, "input": {}}
        return tool_id, self._message(start, deltas, {**start, "input": tool_input}, "tool_use", args)

    def _message(self, start: Line, deltas: list[Line], block: Line, stop: str, payload: str) -> list[Line]:
        usage = TokenUsage(input_tokens=2000 + 100 * self.turns, output_tokens=max(1, len(payload) // 4))
        mid, opening, closing = self._envelope(self.model, usage, stop)
        placeholder = {**_usage(usage), "output_tokens": 1}
        # As the real CLI does, the complete block goes out before its content_block_stop.
        assistant = _api_message(mid, self.model, [block], placeholder)
        return [
            *opening,
            self._event({"type": "content_block_start", "index": 0, "content_block": start}),
            *(self._event({"type": "content_block_delta", "index": 0, "delta": d}) for d in deltas),
            self._line({"type": "assistant", "message": assistant, "parent_tool_use_id": None}),
            self._event({"type": "content_block_stop", "index": 0}),
            *closing,
        ]

    def usage_message(self, model: str, usage: TokenUsage) -> list[Line]:
        """A message with no blocks that reports ``usage``: a server can price a run mid-way."""
        _mid, opening, closing = self._envelope(model, usage, "end_turn")
        return [*opening, *closing]

    def _envelope(self, model: str, usage: TokenUsage, stop: str) -> tuple[str, list[Line], list[Line]]:
        """The status and message_start before a message's blocks; message_delta and message_stop after."""
        self.turns += 1
        self.tokens[model] = _add(self.tokens.get(model, TokenUsage(0, 0)), usage)
        mid = f"msg_fake_{uuid.uuid4().hex[:24]}"
        first = {**_usage(usage), "output_tokens": 1, "service_tier": "standard"}
        opening = [
            self._line({"type": "system", "subtype": "status", "status": "requesting"}),
            self._event({"type": "message_start", "message": _api_message(mid, model, [], first)}),
        ]
        delta = {"stop_reason": stop, "stop_sequence": None}
        closing = [
            self._event({"type": "message_delta", "delta": delta, "usage": _usage(usage)}),
            self._event({"type": "message_stop"}),
        ]
        return mid, opening, closing

    def tool_result(self, tool_id: str, content: str, is_error: bool, detail: object) -> Line:
        block = {"tool_use_id": tool_id, "type": "tool_result", "content": content, "is_error": is_error}
        return self._line(
            {
                "type": "user",
                "message": {"role": "user", "content": [block]},
                "parent_tool_use_id": None,
                "timestamp": _timestamp(),
                "tool_use_result": f"Error: {content}" if is_error else detail,
            }
        )

    def rate_limited(self, resets_at: int, limit_type: str) -> tuple[str, list[Line]]:
        """A hard block as the CLI reports it in OAuth mode: the event, then a synthetic error message."""
        info = {"status": "rejected", "resetsAt": resets_at, "rateLimitType": limit_type, "isUsingOverage": False}
        text = f"You've hit your session limit · resets {_clock(resets_at)} (UTC)"
        message = _api_message(_uid(), "<synthetic>", [{"type": "text", "text": text}], _usage(TokenUsage(0, 0)))
        message |= {"stop_reason": "stop_sequence", "stop_sequence": ""}
        assistant = {"type": "assistant", "message": message, "parent_tool_use_id": None, "error": "rate_limit"}
        return text, [self._line({"type": "rate_limit_event", "rate_limit_info": info}), self._line(assistant)]

    def cost(self) -> float:
        """What the tokens so far cost at list prices, as the CLI computes ``total_cost_usd``."""
        return sum(model_cost(model, used) for model, used in self.tokens.items())

    def result(self, outcome: ResultSpec, text: str | None, cost: float, started: float, **extra: Any) -> Line:
        """The last line; ``text`` None leaves out ``result``, as error_max_turns does."""
        totals = TokenUsage(0, 0)
        for used in self.tokens.values():
            totals = _add(totals, used)
        line: Line = {
            "type": "result",
            "subtype": outcome.subtype,
            "is_error": outcome.is_error,
            "api_error_status": None,
            "duration_ms": int((time.time() - started) * 1000),
            "num_turns": self.turns,
            "result": text,
            "stop_reason": "end_turn",
            "total_cost_usd": cost,
            "usage": _usage(totals),
            "modelUsage": {model: _model_usage(model, used) for model, used in self.tokens.items()},
            "permission_denials": [],
            "terminal_reason": outcome.terminal_reason,
            "errors": list(outcome.errors),
        }
        if text is None:
            del line["result"]
        if not outcome.errors:
            del line["errors"]
        return self._line(line | extra)


def _model_usage(model: str, used: TokenUsage) -> Line:
    return {
        "inputTokens": used.input_tokens,
        "outputTokens": used.output_tokens,
        "cacheReadInputTokens": used.cache_read_input_tokens,
        "cacheCreationInputTokens": used.cache_creation_input_tokens,
        "webSearchRequests": 0,
        "costUSD": model_cost(model, used),
        "contextWindow": 200000,
        "maxOutputTokens": 32000,
    }
