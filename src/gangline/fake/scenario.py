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
    {"refuse": text, "code": n}             alone: print text on stderr and exit n (default 1)
                                            before starting a session, as a CLI refusing its set-up does
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
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal, get_args

import msgspec

from gangline.core.errors import ConfigError

DEFAULT_MODEL = "claude-sonnet-4-5"
FAKE_VERSION = "gangline-fake"
PLACEHOLDERS = ("item_id", "item_slug", "run_id", "role", "attempt")
_ENV_NAMES = {name: f"GANGLINE_{name.upper()}" for name in PLACEHOLDERS if name != "attempt"}
_PROBE: dict[str, object] = {"item_id": "1", "item_slug": "item", "run_id": "run", "role": "coder", "attempt": 1}

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


class Refuse(_Step):
    refuse: str
    code: Annotated[int, msgspec.Meta(ge=1, le=255)] = 1


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
    | Refuse
    | Hang
    | WaitForFile
    | Sleep
)
# A step's action key is its first field.
STEP_KINDS: dict[str, type[Step]] = {cls.__struct_fields__[0]: cls for cls in get_args(Step)}
ENDS_PROCESS = (RateLimited, Crash, Exit, Refuse, Hang)


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
