"""The project's gates, run for real through /bin/sh: order, failure, timeouts, stray children, output bounds."""

from __future__ import annotations

import asyncio
import os
import re
from dataclasses import dataclass
from pathlib import Path

from gangline.repo.gates import GateResult, GatesReport, run_gates
from kits.helpers import alive

ENV = {"PATH": os.environ["PATH"]}
BOUND_S = 10.0  # generous: every gate below that must be stopped is stopped in about a second


@dataclass(frozen=True)
class Gate:
    name: str
    command: str
    timeout_s: float = 30.0


async def wait_for_file(path: Path) -> str:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + BOUND_S
    while not path.exists() or not path.read_text().endswith("\n"):
        assert loop.time() < deadline, f"{path} never appeared"
        await asyncio.sleep(0.01)
    return path.read_text()


async def test_gates_that_pass_report_their_output(tmp_path: Path) -> None:
    report = await run_gates([Gate("lint", "echo linted"), Gate("where", "pwd")], tmp_path, ENV)
    assert report.passed
    assert [r.output for r in report.results] == ["linted\n", f"{tmp_path}\n"]
    assert all(r.exit_code == 0 and not r.timed_out and not r.truncated for r in report.results)


async def test_an_empty_list_of_gates_passes() -> None:
    assert GatesReport(()).passed
    assert (await run_gates([], Path("/"), ENV)).passed


async def test_gates_see_only_the_environment_they_are_given(tmp_path: Path) -> None:
    report = await run_gates([Gate("env", 'echo "$GREETING-$HOME"')], tmp_path, ENV | {"GREETING": "hi"})
    assert report.results[0].output == "hi-\n"


async def test_the_first_failing_gate_stops_the_rest(tmp_path: Path) -> None:
    gates = [Gate("lint", "true"), Gate("tests", "echo 2 failed >&2; exit 3"), Gate("never", "touch ran")]
    report = await run_gates(gates, tmp_path, ENV)
    assert not report.passed
    assert [r.name for r in report.results] == ["lint", "tests"]
    assert report.results[1].exit_code == 3
    assert report.results[1].output == "2 failed\n"
    assert not (tmp_path / "ran").exists()
    summary = report.failure_summary()
    assert "Gate 'tests' failed with exit code 3." in summary
    assert "Command: echo 2 failed >&2; exit 3" in summary
    assert "passed before it: lint" in summary
    assert summary.endswith("2 failed\n")


async def test_a_gate_that_times_out_is_killed_with_its_whole_group(tmp_path: Path) -> None:
    gate = Gate("hang", "sleep 1000 & echo $! > bg.pid; sleep 1000", timeout_s=0.5)
    loop = asyncio.get_running_loop()
    started = loop.time()
    report = await run_gates([gate], tmp_path, ENV, kill_grace_s=0.5)
    assert loop.time() - started < BOUND_S
    result = report.results[0]
    assert result.timed_out and result.exit_code is None and not result.passed
    assert not alive(int((tmp_path / "bg.pid").read_text()))
    assert re.search(r"Gate 'hang' timed out after [01]\.\d s and was killed", report.failure_summary())


async def test_a_gate_that_ignores_sigterm_is_killed(tmp_path: Path) -> None:
    gate = Gate("stubborn", "trap '' TERM; sleep 1000 & sleep 1000", timeout_s=0.3)
    loop = asyncio.get_running_loop()
    started = loop.time()
    report = await run_gates([gate], tmp_path, ENV, kill_grace_s=0.2)
    assert report.results[0].timed_out
    assert loop.time() - started < BOUND_S


async def test_a_background_child_holding_the_output_open_does_not_hang_the_gate(tmp_path: Path) -> None:
    gate = Gate("spawns", "sleep 1000 & echo $! > bg.pid; echo done")
    loop = asyncio.get_running_loop()
    started = loop.time()
    report = await run_gates([gate], tmp_path, ENV, kill_grace_s=0.5)
    assert loop.time() - started < BOUND_S
    assert report.passed
    assert report.results[0].output == "done\n"
    assert not alive(int((tmp_path / "bg.pid").read_text()))


async def test_output_is_bounded_keeping_its_start_and_end(tmp_path: Path) -> None:
    gate = Gate("loud", "echo START; yes 0123456789 | head -c 5000000; echo; echo END; exit 1")
    report = await run_gates([gate], tmp_path, ENV, output_limit=64 * 1024)
    result = report.results[0]
    assert result.truncated
    assert result.output.startswith("START\n")
    assert result.output.endswith("END\n")
    assert "bytes of output omitted" in result.output
    assert len(result.output.encode()) < 64 * 1024 + 100
    summary = report.failure_summary()
    assert len(summary.encode()) < 9 * 1024
    assert summary.endswith("END\n")


async def test_a_gate_in_a_missing_directory_fails_without_running(tmp_path: Path) -> None:
    report = await run_gates([Gate("lint", "true")], tmp_path / "missing", ENV)
    result = report.results[0]
    assert not result.passed and result.exit_code is None and not result.timed_out
    assert "cannot start" in result.output
    assert "could not be started" in report.failure_summary()


async def test_cancelling_run_gates_kills_the_running_gate(tmp_path: Path) -> None:
    gate = Gate("slow", "sleep 1000 & echo $! > bg.pid; sleep 1000")
    task = asyncio.create_task(run_gates([gate], tmp_path, ENV))
    pid = int(await wait_for_file(tmp_path / "bg.pid"))
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + BOUND_S
    while alive(pid):
        assert loop.time() < deadline, "the gate's child outlived the cancelled run"
        await asyncio.sleep(0.01)


def test_a_gate_result_passes_only_on_exit_code_zero_in_time() -> None:
    def result(exit_code: int | None, timed_out: bool) -> GateResult:
        return GateResult("g", "c", exit_code, timed_out, 0.1, "", False)

    assert result(0, False).passed
    assert not result(1, False).passed
    assert not result(None, True).passed
    assert not result(-9, False).passed
