"""A fake agent CLI: replays a recorded stream-json transcript, or plays a scripted scenario, on its stdout (a PTY).

It accepts and ignores Claude Code's own flags, so the runner can drive it the same way,
and adds its own for the demo, tests and benchmarks (``--help`` lists them). With
``--scenario`` it acts on its working directory (writes files, runs commands, commits) and
prints the stream-json the real CLI would; the format is in ``gangline.fake.scenario``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any, NoReturn

from gangline.core.errors import ConfigError
from gangline.fake.scenario import (
    DEFAULT_MODEL,
    SUCCESS,
    Append,
    Commit,
    Cost,
    Crash,
    Exit,
    FinalJson,
    Hang,
    RateLimited,
    RateLimitSpec,
    Refuse,
    ResultOverride,
    ResultSpec,
    Run,
    Say,
    Sleep,
    Step,
    UsageReport,
    WaitForFile,
    Write,
    context_from_env,
    load_scenario,
    next_attempt,
)
from gangline.fake.stream import Stream

DEFAULT_TRANSCRIPT = "write.jsonl"
WAIT_TIMEOUT_EXIT = 9  # a wait_for_file step gave up
_MAX_TOOL_OUTPUT = 30_000  # characters of command output kept, as the real CLI's Bash tool does
_GIT_IDENTITY = "-c user.name='fake agent' -c user.email=fake@agent.invalid -c commit.gpgsign=false"
_FRESH = " (file state is current in your context — no need to Read it back)"


def shipped_transcript(name: str = DEFAULT_TRANSCRIPT) -> Path:
    return Path(str(resources.files("gangline.fake.transcripts").joinpath(name)))


def shipped_scenario(name: str) -> Path:
    """A scenario shipped in ``gangline.fake.scenarios``: ``coder.json``, ``qa.json`` or ``mergemaster.json``."""
    return Path(str(resources.files("gangline.fake.scenarios").joinpath(name)))


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gangline-fake-agent", description=__doc__)
    p.add_argument("-p", "--print", dest="prompt", default="", help="the prompt (ignored)")
    p.add_argument("--resume", default=None, help="session to resume (a scenario reports it as its session id)")
    p.add_argument("--transcript", type=Path, default=None, help="file whose lines are replayed verbatim")
    p.add_argument("--rate", type=float, default=0.0, help="lines per second; 0 means as fast as possible")
    p.add_argument(
        "--repeat-to",
        type=int,
        default=0,
        help="emit this many lines: the first and last once, the lines between them cycled",
    )
    p.add_argument(
        "--stamp",
        action="store_true",
        help='add "fake_written_at": <epoch seconds> as the first key of each replayed JSON line, read from '
        "the clock just before the line is written (the fan-out benchmark's end-to-end latency)",
    )
    p.add_argument("--exit-code", type=int, default=0, help="exit status after the replay")
    p.add_argument("--hang-after", type=int, default=-1, help="stop after this many lines and hang forever")
    p.add_argument("--ignore-sigterm", action="store_true", help="ignore SIGTERM (only SIGKILL ends it)")
    p.add_argument("--grandchild", action="store_true", help="start a process that outlives this one")
    p.add_argument("--stderr", default=None, help="text to print on stderr before exiting")
    p.add_argument(
        "--scenario",
        type=Path,
        default=None,
        help="play this JSON scenario instead of a transcript (see gangline.fake.scenario); "
        "--transcript, --rate, --repeat-to, --stamp, --hang-after, --exit-code and --stderr are then ignored",
    )
    p.add_argument(
        "--scenario-state",
        type=Path,
        default=None,
        help="directory for the scenario's attempt counters (default: <scenario>.state)",
    )
    p.add_argument(
        "--pace", type=float, default=0.0, help="with --scenario: seconds to pause before each step (for watching)"
    )
    p.add_argument("--model", default=DEFAULT_MODEL, help="the model the session reports")
    p.add_argument("--permission-mode", default="acceptEdits", help="the permission mode the session reports")
    return p


def _lines(path: Path, repeat_to: int) -> list[bytes]:
    lines = [line if line.endswith(b"\n") else line + b"\n" for line in path.read_bytes().splitlines(keepends=True)]
    if repeat_to and len(lines) > 2:
        # One session start and one result around a long body, as a long real session has.
        body = lines[1:-1]
        full, rest = divmod(repeat_to - 2, len(body))
        lines = [lines[0], *(body * full), *body[:rest], lines[-1]]
    return lines


def _write_all(data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(1, view) :]


def _stamped(line: bytes) -> bytes:
    """``line`` with ``"fake_written_at": <now>`` as its first key, if it is a JSON object."""
    if not line.startswith(b"{"):
        return line
    rest = line[1:]
    sep = b"" if rest.lstrip().startswith(b"}") else b","
    return b'{"fake_written_at":%.6f%s%s' % (time.time(), sep, rest)


def _replay(lines: list[bytes], rate: float, stamp: bool = False) -> None:
    if rate <= 0:
        # Big writes: the benchmark measures the reader, not this process.
        for start in range(0, len(lines), 256):
            batch = lines[start : start + 256]
            _write_all(b"".join(map(_stamped, batch) if stamp else batch))
        return
    period = 1.0 / rate
    next_at = time.monotonic()
    for line in lines:
        _write_all(_stamped(line) if stamp else line)
        next_at += period
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)


def _spawn_grandchild() -> int:
    # Stays in our process group, holds the PTY open, and ignores SIGTERM: the runner must
    # still make it die with the run.
    code = "import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN); signal.pause()"
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.DEVNULL)
    return child.pid


def main(argv: list[str] | None = None) -> int:
    args, _claude_flags = _parser().parse_known_args(argv)
    if args.ignore_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if args.grandchild:
        pid = _spawn_grandchild()
        _write_all(b'{"type":"system","subtype":"fake_grandchild","description":"%d"}\n' % pid)
    if args.scenario is not None:
        return play_scenario(args, os.environ)
    path = args.transcript or shipped_transcript()
    lines = _lines(path, args.repeat_to)
    if args.hang_after >= 0:
        _replay(lines[: args.hang_after], args.rate, args.stamp)
        threading.Event().wait()
    _replay(lines, args.rate, args.stamp)
    if args.stderr:
        os.write(2, args.stderr.encode() + b"\n")
    return int(args.exit_code)


# --- scenarios ----------------------------------------------------------------------------


def play_scenario(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    """Play this invocation's attempt of ``args.scenario``; exit 2 if the scenario is invalid."""
    cwd = Path.cwd()
    try:
        scenario = load_scenario(args.scenario)
        attempt = next_attempt(args.scenario, cwd, args.scenario_state)
        steps = scenario.steps(attempt, context_from_env(env, attempt))
    except ConfigError as err:
        os.write(2, f"gangline-fake-agent: invalid scenario: {err}\n".encode())
        return 2
    stream = Stream(args.resume or str(uuid.uuid4()), args.model, str(cwd))
    return _Player(stream, cwd, args.pace).play(steps, args.permission_mode)


def _emit(*lines: dict[str, Any]) -> None:
    _write_all(b"".join(json.dumps(line, ensure_ascii=False, separators=(",", ":")).encode() + b"\n" for line in lines))


class _Player:
    """Acts out one attempt's steps in ``cwd`` and reports them as the real CLI would."""

    def __init__(self, stream: Stream, cwd: Path, pace_s: float = 0.0) -> None:
        self.stream = stream
        self.cwd = cwd
        self.pace_s = pace_s
        self.started = time.time()
        self.last_text = ""
        self.final_json: str | None = None
        self.cost: float | None = None
        self.outcome: ResultSpec = SUCCESS

    def play(self, steps: list[Step], permission_mode: str) -> int:
        if steps and isinstance(steps[0], Refuse):  # before any session, as a CLI refusing its set-up
            os.write(2, steps[0].refuse.encode() + b"\n")
            return steps[0].code
        _emit(self.stream.init(permission_mode))
        for step in steps:
            if self.pace_s > 0:
                time.sleep(self.pace_s)  # the demo's pace: slow enough for a person to watch the board
            code = self._do(step)
            if code is not None:
                return code
        text = self.final_json if self.final_json is not None else self.last_text
        # Error results carry ``errors`` and no ``result`` text, as error_max_turns does.
        shown = None if self.outcome.subtype.startswith("error_") else text
        _emit(self.stream.result(self.outcome, shown, self._cost(), self.started))
        return 1 if self.outcome.is_error else 0

    def _do(self, step: Step) -> int | None:
        """Act out one step; an int means exit now with that status."""
        match step:
            case Say():
                self._say(step.say)
            case FinalJson():
                self.final_json = json.dumps(step.final_json, ensure_ascii=False)
                self._say(self.final_json)
            case Write() | Append():
                self._write(step)
            case Run():
                self._bash(step.run)
            case Commit():
                message = shlex.quote(step.commit)
                self._bash(f"git add -A && git {_GIT_IDENTITY} commit -q -m {message} && git log --oneline -1", True)
            case UsageReport():
                _emit(*self.stream.usage_message(step.model, step.usage))
            case Cost():
                self.cost = step.cost
            case ResultOverride():
                self.outcome = step.result
            case RateLimited():
                return self._rate_limited(step.rate_limit)
            case Crash():
                _crash(step.crash)
            case Exit():
                return step.exit
            case Refuse():  # not first: the session has started, so this is an ordinary exit
                os.write(2, step.refuse.encode() + b"\n")
                return step.code
            case Hang():
                threading.Event().wait()
            case WaitForFile():
                return _wait_for_file(self.cwd / step.wait_for_file, step.timeout_s)
            case Sleep():
                time.sleep(step.sleep)
        return None

    def _cost(self) -> float:
        return self.cost if self.cost is not None else self.stream.cost()

    def _say(self, text: str) -> None:
        self.last_text = text
        _emit(*self.stream.text_message(text))

    def _write(self, step: Write | Append) -> None:
        rel, appending = (step.write, False) if isinstance(step, Write) else (step.append, True)
        target = self.cwd / rel
        inside = _inside(self.cwd, target)
        old = target.read_text(encoding="utf-8", errors="replace") if inside and target.is_file() else None
        content = (old or "") + step.text if appending else step.text
        tool_id, lines = self.stream.tool_message("Write", {"file_path": str(target), "content": content})
        _emit(*lines)
        try:
            if not inside:
                raise OSError(f"{target} resolves outside the working directory {self.cwd}")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content, encoding="utf-8")
        except OSError as err:
            _emit(self.stream.tool_result(tool_id, str(err), True, None))
            return
        detail: dict[str, Any] = {
            "type": "create" if old is None else "update",
            "filePath": str(target),
            "content": content,
            "structuredPatch": [],
            "originalFile": old,
            "userModified": False,
        }
        said = (
            f"File created successfully at: {target}"
            if old is None
            else f"The file {target} has been updated successfully."
        )
        _emit(self.stream.tool_result(tool_id, said + _FRESH, False, detail))

    def _bash(self, command: str, commits: bool = False) -> None:
        tool_id, lines = self.stream.tool_message("Bash", {"command": command})
        _emit(*lines)
        proc = subprocess.run(
            ["/bin/sh", "-c", command], cwd=self.cwd, stdin=subprocess.DEVNULL, capture_output=True, check=False
        )
        out, err = _bounded(proc.stdout), _bounded(proc.stderr)
        shown = "\n".join(part for part in (out.rstrip("\n"), err.rstrip("\n")) if part)
        if proc.returncode != 0:
            _emit(self.stream.tool_result(tool_id, f"Exit code {proc.returncode}\n{shown}", True, None))
            return
        detail: dict[str, Any] = {
            "stdout": out,
            "stderr": err,
            "interrupted": False,
            "isImage": False,
            "noOutputExpected": False,
        }
        if commits and out.strip():
            detail["gitOperation"] = {"commit": {"sha": out.split()[0], "kind": "committed"}}
        _emit(self.stream.tool_result(tool_id, shown, False, detail))

    def _rate_limited(self, spec: RateLimitSpec) -> int:
        resets_at = int(time.time() + spec.resets_in_s)
        text, lines = self.stream.rate_limited(resets_at, spec.limit_type)
        blocked = ResultSpec("success", is_error=True)
        extra = {"api_error_status": 429, "stop_reason": "stop_sequence"}
        _emit(*lines, self.stream.result(blocked, text, self._cost(), self.started, **extra))
        return 1  # the real CLI exits 1 after an API error result (REAL_CLI.md section 8)


def _inside(root: Path, target: Path) -> bool:
    # Resolved, so a symlink in the worktree cannot carry a write outside it.
    base, real = os.path.realpath(root), os.path.realpath(target)
    return real == base or real.startswith(base + os.sep)


def _bounded(data: bytes) -> str:
    text = data.decode("utf-8", "replace")
    if len(text) <= _MAX_TOOL_OUTPUT:
        return text
    return text[:_MAX_TOOL_OUTPUT] + f"\n... [{len(text) - _MAX_TOOL_OUTPUT} characters truncated]"


def _crash(name: str) -> NoReturn:
    sig = signal.Signals[name]
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a core dump would land in the worktree
    if sig is not signal.SIGKILL:
        signal.signal(sig, signal.SIG_DFL)  # undo --ignore-sigterm or a faulthandler
    os.kill(os.getpid(), sig)
    os._exit(128 + sig)  # not reached: the signal's default action ends the process


def _wait_for_file(path: Path, timeout_s: float) -> int | None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if time.monotonic() >= deadline:
            os.write(2, f"gangline-fake-agent: {path} did not appear within {timeout_s:g}s\n".encode())
            return WAIT_TIMEOUT_EXIT
        time.sleep(0.02)  # the fake agent polls; it is the agent, not a test
    return None


if __name__ == "__main__":
    sys.exit(main())
