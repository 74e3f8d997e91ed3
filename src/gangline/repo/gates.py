"""The project's own checks (gates): run in order by the server, bounded in time and in output."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from gangline.agents.processes import kill_and_reap, terminate_group

HEAD_BYTES = 8 * 1024  # the start of a gate's output: usually says what it is running
SUMMARY_BYTES = 8 * 1024  # the end of a failed gate's output shown in a retry prompt
_CHUNK = 64 * 1024
_REAP_S = 5.0
# After a gate's shell exits, how long a background child may keep the output pipe open
# before the group is killed; the bound that stops `server & run-tests` hanging run_gates.
DRAIN_S = 1.0


Confine = Callable[[list[str]], list[str]]  # a command line, as run inside a sandbox


class GateLike(Protocol):
    """What run_gates needs of a gate (``project.config.GateSpec`` is one)."""

    @property
    def name(self) -> str: ...
    @property
    def command(self) -> str: ...
    @property
    def timeout_s(self) -> float: ...


@dataclass(frozen=True)
class GateResult:
    name: str
    command: str
    exit_code: int | None  # None when it timed out or could not start
    timed_out: bool
    duration_s: float
    output: str  # stdout and stderr interleaved; the middle dropped when too long
    truncated: bool

    @property
    def passed(self) -> bool:
        return not self.timed_out and self.exit_code == 0

    @property
    def outcome(self) -> str:
        """How it ended, in words: "passed", "failed with exit code 1", "timed out after 600 s and was killed"."""
        if self.timed_out:
            return f"timed out after {_seconds(self.duration_s)} s and was killed"
        if self.exit_code is None:
            return "could not be started"
        return "passed" if self.exit_code == 0 else f"failed with exit code {self.exit_code}"


@dataclass(frozen=True)
class GatesReport:
    results: tuple[GateResult, ...]
    noun: str = "gate"  # what was run: gates, or a point's hooks (which fail the way gates do)

    @property
    def passed(self) -> bool:
        return all(result.passed for result in self.results)

    def failure_summary(self) -> str:
        """Which gate failed, how, and the end of its output: the body of a retry prompt."""
        failed = next((result for result in self.results if not result.passed), None)
        if failed is None:
            return f"All {len(self.results)} {self.noun}(s) passed."
        passed = [result.name for result in self.results if result.passed]
        lines = [f"{self.noun.capitalize()} {failed.name!r} {failed.outcome}.", f"Command: {failed.command}"]
        if passed:
            lines.append(f"{self.noun.capitalize()}s that passed before it: {', '.join(passed)}.")
        lines += ["Last output:", _tail(failed.output, SUMMARY_BYTES, failed.truncated)]
        return "\n".join(lines)


def _tail(text: str, max_bytes: int, truncated: bool) -> str:
    data = text.encode()
    if len(data) <= max_bytes and not truncated:
        return text
    return "[... earlier output omitted ...]\n" + data[-max_bytes:].decode(errors="ignore")


class BoundedOutput:
    """Keeps the first ``HEAD_BYTES`` and the last ``limit - HEAD_BYTES`` bytes fed to it, nothing more."""

    def __init__(self, limit: int) -> None:
        self._head_limit = min(HEAD_BYTES, limit // 2)
        self._tail_limit = max(limit - self._head_limit, 0)
        self._head = bytearray()
        self._tail = bytearray()
        self.dropped = 0

    def feed(self, chunk: bytes) -> None:
        room = self._head_limit - len(self._head)
        self._head += chunk[:room]
        self._tail += chunk[room:] if room > 0 else chunk
        excess = len(self._tail) - self._tail_limit
        if excess > 0:
            del self._tail[:excess]
            self.dropped += excess

    def text(self) -> str:
        marker = f"\n[... {self.dropped} bytes of output omitted ...]\n".encode() if self.dropped else b""
        return bytes(self._head + marker + self._tail).decode(errors="replace")


async def run_gates(
    gates: Sequence[GateLike],
    cwd: Path,
    env: Mapping[str, str],
    kill_grace_s: float = 2.0,
    output_limit: int = 64 * 1024,
    confine: Confine | None = None,
    noun: str = "gate",
) -> GatesReport:
    """Run ``gates`` in order in ``cwd``, stopping at the first that fails; ``confine`` wraps each in a sandbox."""
    results: list[GateResult] = []
    for gate in gates:
        result = await run_gate(gate, cwd, env, kill_grace_s, output_limit, confine)
        results.append(result)
        if not result.passed:
            break
    return GatesReport(tuple(results), noun)


async def run_gate(
    gate: GateLike,
    cwd: Path,
    env: Mapping[str, str],
    kill_grace_s: float,
    output_limit: int,
    confine: Confine | None = None,
) -> GateResult:
    """One gate: ``/bin/sh -c`` in its own process group, killed whole on timeout or when done."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    output = BoundedOutput(output_limit)
    try:
        argv = ["/bin/sh", "-c", gate.command]
        proc, pipe = await _spawn(confine(argv) if confine else argv, cwd, env)
    except OSError as exc:
        return GateResult(gate.name, gate.command, None, False, loop.time() - started, f"cannot start: {exc}", False)
    timed_out = finished = False
    try:
        async with asyncio.TaskGroup() as tasks:
            reader = tasks.create_task(_pump(pipe, output))
            timed_out = await _wait_or_kill(proc, gate.timeout_s, kill_grace_s)
            await _drain_then_kill(proc.pid, reader, kill_grace_s)
        finished = True
    finally:
        pipe.close()
        if not finished:  # cancelled: nothing of the gate may outlive the caller
            await kill_and_reap(proc, _REAP_S)
    exit_code = None if timed_out else proc.returncode
    return GateResult(
        gate.name, gate.command, exit_code, timed_out, loop.time() - started, output.text(), output.dropped > 0
    )


async def _spawn(argv: list[str], cwd: Path, env: Mapping[str, str]) -> tuple[asyncio.subprocess.Process, BinaryIO]:
    """Start ``argv`` leading a new session; its output and errors share one pipe."""
    read_fd, write_fd = os.pipe()
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=write_fd,
            stderr=write_fd,
            start_new_session=True,
        )
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)  # the gate's processes hold the only write ends: EOF once they are all gone
    return proc, os.fdopen(read_fd, "rb", buffering=0)


async def _pump(pipe: BinaryIO, output: BoundedOutput) -> None:
    loop = asyncio.get_running_loop()
    stream = asyncio.StreamReader(limit=_CHUNK)
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stream), pipe)
    try:
        while chunk := await stream.read(_CHUNK):
            output.feed(chunk)
    finally:
        transport.close()  # also when cancelled: a process outside the group may hold the pipe forever


async def _wait_or_kill(proc: asyncio.subprocess.Process, timeout_s: float, kill_grace_s: float) -> bool:
    """Wait for the gate's shell; on timeout kill its group. True if it timed out."""
    try:
        await asyncio.wait_for(proc.wait(), timeout_s)
        return False
    except TimeoutError:
        await terminate_group(proc.pid, kill_grace_s)
        await proc.wait()
        return True


async def _drain_then_kill(pgid: int, reader: asyncio.Task[None], kill_grace_s: float) -> None:
    """Read what is left, then end whatever the gate left running in its group."""
    await asyncio.wait({reader}, timeout=DRAIN_S)
    await terminate_group(pgid, kill_grace_s)
    # A process that left the group (setsid) may still hold the pipe: stop reading after a bound.
    await asyncio.wait({reader}, timeout=DRAIN_S)
    reader.cancel()


def _seconds(duration_s: float) -> str:
    """A duration for a person: tenths below 10 s (a 0.5 s timeout is not "0 s"), whole seconds above."""
    return f"{duration_s:.1f}" if duration_s < 10 else f"{duration_s:.0f}"
