"""The runner through a real PTY, driven by the fake CLI shipped in the package."""

from __future__ import annotations

import asyncio
import errno
import os
import stat
import threading
from pathlib import Path

import msgspec
import pytest

from gangline.agents import runlog
from gangline.agents.bus import Bus
from gangline.agents.processes import group_members
from gangline.agents.runlog import replay
from gangline.agents.runner import Runner, RunRequest
from gangline.core.errors import AgentNotFoundError, RunLogError, RunnerError
from gangline.core.events import (
    Malformed,
    NonObjectJson,
    ProcessStarted,
    RawOutput,
    Result,
    RunFinished,
    RunOutcome,
    SessionStarted,
    SystemNotice,
    UnknownEvent,
)
from gangline.core.profiles import AgentProfile, CliKind, RunnerSettings
from kits.helpers import FAST, TRANSCRIPTS, RunFn, events_of, fake_profile, records

TEXT = TRANSCRIPTS / "claude_text.jsonl"


def transcript(tmp_path: Path, data: bytes, name: str = "t.jsonl") -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


async def test_a_replayed_session_succeeds_with_every_line_logged_in_order(run_agent: RunFn) -> None:
    summary = await run_agent(fake_profile())
    assert summary.outcome is RunOutcome.SUCCEEDED, summary.reason
    recs = records(summary)
    assert [r.id for r in recs] == list(range(1, len(recs) + 1))
    assert isinstance(recs[0].event, ProcessStarted) and isinstance(recs[-1].event, RunFinished)
    assert sum(1 for r in recs if r.raw) == 60  # one raw line per line the CLI printed
    assert summary.session_id == events_of(summary, SessionStarted)[0].session_id


async def test_process_identity_is_logged_before_any_output(run_agent: RunFn) -> None:
    summary = await run_agent(fake_profile())
    first = records(summary)[0].event
    assert isinstance(first, ProcessStarted)
    assert summary.process is not None and first.pid == summary.process.pid == first.pgid
    assert first.start_ticks > 0


async def test_an_agent_silent_past_the_inactivity_timeout_is_killed_and_the_run_stalls(run_agent: RunFn) -> None:
    settings = RunnerSettings(inactivity_timeout_s=1, kill_grace_s=0.5, drain_timeout_s=1)
    summary = await run_agent(fake_profile("--hang-after", "3"), settings=settings)
    assert summary.outcome is RunOutcome.STALLED
    assert summary.reason == "no output for 1s (inactivity timeout)"
    assert summary.exit_code == -15  # SIGTERM was enough
    assert summary.process is not None and group_members(summary.process.pgid) == []


async def test_garbage_and_non_utf8_bytes_are_kept_and_the_session_goes_on(run_agent: RunFn, tmp_path: Path) -> None:
    first, *rest = TEXT.read_bytes().splitlines(keepends=True)
    noise = b'plain noise \x1b[1mbold\x1b[0m\n\xff\xfe\x00binary\n[1,2,3]\n{"type":"from_the_future"}\n'
    summary = await run_agent(fake_profile("--transcript", transcript(tmp_path, first + noise + b"".join(rest))))
    raw = events_of(summary, RawOutput)
    assert [r.text for r in raw] == ["plain noise bold", "\ufffd\ufffdbinary"]
    assert events_of(summary, NonObjectJson) == [NonObjectJson(json_type="list")]
    assert events_of(summary, UnknownEvent) == [UnknownEvent(type="from_the_future")]
    assert summary.outcome is RunOutcome.SUCCEEDED, summary.reason


async def test_a_20_mb_line_becomes_one_malformed_event_and_later_lines_survive(
    run_agent: RunFn, tmp_path: Path
) -> None:
    body = TEXT.read_bytes().splitlines(keepends=True)
    data = body[0] + b'{"huge":"' + b"x" * (20 * 1024 * 1024) + b'"}\n' + b"".join(body[1:])
    summary = await run_agent(fake_profile("--transcript", transcript(tmp_path, data)))
    (bad,) = events_of(summary, Malformed)
    assert bad.size == 20 * 1024 * 1024 + 11 and bad.head.startswith('{"huge":"xxx')
    assert summary.outcome is RunOutcome.SUCCEEDED, summary.reason
    assert summary.log_path.stat().st_size < 1024 * 1024  # the line itself was not stored


async def test_a_cli_that_exits_at_once_says_why(run_agent: RunFn, tmp_path: Path) -> None:
    empty = transcript(tmp_path, b"")
    summary = await run_agent(fake_profile("--transcript", empty, "--exit-code", "7", "--stderr", "bad flag --frob"))
    assert summary.outcome is RunOutcome.REFUSED
    assert summary.exit_code == 7
    assert summary.reason == (
        "the agent CLI refused to start: it exited with code 7 before starting a session, saying: bad flag --frob"
    )


async def test_a_cli_that_prints_nothing_says_so(run_agent: RunFn, tmp_path: Path) -> None:
    summary = await run_agent(fake_profile("--transcript", transcript(tmp_path, b""), "--exit-code", "1"))
    assert summary.reason.endswith("exited with code 1 before starting a session, saying: it printed nothing")


async def test_stopping_a_cli_that_ignores_sigterm_escalates_to_sigkill(tmp_path: Path) -> None:
    runner = Runner(FAST, tmp_path / "runs", dict(os.environ))
    bus = Bus()
    sub = bus.subscribe()
    task = asyncio.create_task(
        runner.run(RunRequest("r", fake_profile("--hang-after", "2", "--ignore-sigterm"), "p", tmp_path), bus)
    )
    async for record in sub:  # wait until the session is really under way
        if isinstance(record.event, SessionStarted):
            break
    runner.stop_nowait("r", "a person pressed stop")
    summary = await asyncio.wait_for(task, 10)
    assert summary.outcome is RunOutcome.STOPPED and summary.reason == "a person pressed stop"
    assert summary.exit_code == -9
    assert summary.process is not None and group_members(summary.process.pgid) == []


async def test_a_grandchild_left_behind_dies_with_the_run(run_agent: RunFn) -> None:
    summary = await run_agent(fake_profile("--grandchild"))
    (notice,) = [e for e in events_of(summary, SystemNotice) if e.subtype == "fake_grandchild"]
    grandchild = int(notice.detail)
    assert summary.outcome is RunOutcome.SUCCEEDED, summary.reason
    assert summary.process is not None and group_members(summary.process.pgid) == []
    assert not Path(f"/proc/{grandchild}").exists() or b") Z " in Path(f"/proc/{grandchild}/stat").read_bytes()


async def test_shutdown_kills_every_running_group(tmp_path: Path) -> None:
    runner = Runner(FAST, tmp_path / "runs", dict(os.environ))
    buses = [Bus(), Bus()]
    subs = [b.subscribe() for b in buses]
    tasks = [
        asyncio.create_task(runner.run(RunRequest(f"r{i}", fake_profile("--hang-after", "2"), "p", tmp_path), buses[i]))
        for i in range(2)
    ]
    for sub in subs:
        async for record in sub:
            if isinstance(record.event, SessionStarted):
                break
    await runner.shutdown()
    summaries = await asyncio.gather(*tasks)
    assert [s.outcome for s in summaries] == [RunOutcome.STOPPED, RunOutcome.STOPPED]
    assert all(group_members(s.process.pgid) == [] for s in summaries if s.process)
    assert runner.registry.live() == {}


async def test_cancelling_a_run_kills_its_group_and_still_logs_the_end(tmp_path: Path) -> None:
    runner = Runner(FAST, tmp_path / "runs", dict(os.environ))
    bus = Bus()
    sub = bus.subscribe()
    task = asyncio.create_task(runner.run(RunRequest("c", fake_profile("--hang-after", "2"), "p", tmp_path), bus))
    started = None
    async for record in sub:
        if isinstance(record.event, ProcessStarted):
            started = record.event
        if isinstance(record.event, SessionStarted):
            break
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert started is not None and group_members(started.pgid) == []
    last = list(replay(runner.log_path("c")))[-1].event
    assert isinstance(last, RunFinished) and last.outcome is RunOutcome.STOPPED


async def test_a_missing_binary_is_a_clear_error_before_anything_starts(run_agent: RunFn, tmp_path: Path) -> None:
    profile = AgentProfile(name="claude", cli=CliKind.CLAUDE, command=str(tmp_path / "nope" / "claude"))
    bus = Bus()
    watcher = bus.subscribe()
    with pytest.raises(AgentNotFoundError) as err:
        await run_agent(profile, bus=bus)
    assert err.value.path.endswith("nope/claude") and "does not exist" in str(err.value)
    assert not (tmp_path / "runs").exists()
    assert [r async for r in watcher] == []  # a subscriber is told the run is over, not left waiting


async def test_a_binary_that_is_not_executable_is_a_clear_error(run_agent: RunFn, tmp_path: Path) -> None:
    script = tmp_path / "claude"
    script.write_text("#!/bin/sh\necho hi\n")
    with pytest.raises(AgentNotFoundError, match="is not an executable file"):
        await run_agent(AgentProfile(name="c", command=str(script)))


async def test_a_binary_not_on_path_is_a_clear_error(run_agent: RunFn) -> None:
    with pytest.raises(AgentNotFoundError, match="was not found on PATH"):
        await run_agent(AgentProfile(name="c", command="no-such-agent-cli"), env={"PATH": "/nonexistent"})


async def test_an_unwritable_log_directory_is_a_clear_error(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    logs.chmod(stat.S_IRUSR | stat.S_IXUSR)
    runner = Runner(FAST, logs / "runs", dict(os.environ))
    try:
        if os.geteuid() == 0:
            # root ignores directory permissions: use a path under a regular file instead.
            (tmp_path / "file").write_text("")
            runner = Runner(FAST, tmp_path / "file" / "runs", dict(os.environ))
        with pytest.raises(RunLogError, match="cannot open for writing"):
            await runner.run(RunRequest("r", fake_profile(), "p", tmp_path))
    finally:
        logs.chmod(stat.S_IRWXU)


async def test_hostile_run_ids_and_missing_directories_are_refused(run_agent: RunFn, tmp_path: Path) -> None:
    runner = Runner(FAST, tmp_path / "runs", dict(os.environ))
    with pytest.raises(RunnerError, match="run id must be"):
        await runner.run(RunRequest("../escape", fake_profile(), "p", tmp_path))
    with pytest.raises(RunnerError, match="does not exist"):
        await runner.run(RunRequest("ok", fake_profile(), "p", tmp_path / "missing"))


async def test_the_environment_is_clean_and_secret_values_never_reach_the_log(run_agent: RunFn, tmp_path: Path) -> None:
    script = tmp_path / "print-env"
    script.write_text("#!/bin/sh\nenv\n")
    script.chmod(0o755)
    profile = AgentProfile(name="e", cli=CliKind.FAKE, command=str(script), env={"ANTHROPIC_API_KEY": "sk-very-secret"})
    base = {"PATH": os.environ["PATH"], "CLAUDECODE": "1", "CLAUDE_CODE_ENTRYPOINT": "cli", "KEEP": "me"}
    summary = await run_agent(profile, env=base)
    lines = {e.text for e in events_of(summary, RawOutput)}
    assert {"NO_COLOR=1", "KEEP=me", "ANTHROPIC_API_KEY=sk-very-secret"} <= lines
    assert not any(line.startswith(("CLAUDECODE=", "CLAUDE_CODE_ENTRYPOINT=")) for line in lines)
    (started,) = events_of(summary, ProcessStarted)
    assert "ANTHROPIC_API_KEY" in started.env_names
    assert b"sk-very-secret" not in msgspec.json.encode(started)


async def test_a_prompt_that_looks_like_a_flag_stays_a_prompt(run_agent: RunFn, tmp_path: Path) -> None:
    summary = await run_agent(fake_profile(), prompt="--dangerously-skip-permissions")
    (started,) = events_of(summary, ProcessStarted)
    assert started.argv[started.argv.index("-p") + 1] == " --dangerously-skip-permissions"


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


async def test_fifty_runs_leak_no_file_descriptors_threads_or_processes(run_agent: RunFn, tmp_path: Path) -> None:
    quick = str(TEXT)
    await run_agent(fake_profile("--transcript", quick))  # warm up lazily-opened resources
    fds, threads = _open_fds(), threading.active_count()
    summaries = [await run_agent(fake_profile("--transcript", quick)) for _ in range(50)]
    assert {s.outcome for s in summaries} == {RunOutcome.SUCCEEDED}
    assert _open_fds() == fds
    assert threading.active_count() == threads
    assert all(group_members(s.process.pgid) == [] for s in summaries if s.process)


async def test_result_cost_and_usage_reach_the_summary(run_agent: RunFn) -> None:
    summary = await run_agent(fake_profile())
    (result,) = events_of(summary, Result)
    assert summary.cost_usd == result.cost_usd and summary.cost_usd is not None and summary.cost_usd > 0
    assert summary.usage == result.usage


class _DiskFillsUp:
    """``os`` for the run log whose ``write`` fails with ENOSPC from the ``after``-th call on.

    A real full disk needs a mount this test cannot make, so this one seam is replaced: only the run
    log's module sees it; the agent, its PTY and everything else are real.
    """

    def __init__(self, after: int) -> None:
        self.after, self.calls = after, 0

    def write(self, fd: int, data: bytes | memoryview) -> int:
        self.calls += 1
        if self.calls >= self.after:
            raise OSError(errno.ENOSPC, "No space left on device")
        return os.write(fd, data)

    def __getattr__(self, name: str) -> object:
        return getattr(os, name)


async def test_a_run_log_that_cannot_be_written_mid_run_fails_the_run_and_kills_its_group(
    run_agent: RunFn, monkeypatch: pytest.MonkeyPatch
) -> None:
    full = _DiskFillsUp(after=2)  # the log takes process_started, then the disk is full for the agent's output
    monkeypatch.setattr(runlog, "os", full)
    summary = await run_agent(fake_profile("--transcript", str(TEXT), "--hang-after", "4", "--grandchild"))
    assert summary.outcome is RunOutcome.FAILED
    assert "No space left on device" in (summary.reason or "")
    assert summary.process is not None and group_members(summary.process.pgid) == []
    assert full.calls >= 2  # the failure came mid-run, after the log had taken a record


async def test_a_run_whose_log_passes_its_bound_is_failed_before_it_fills_the_disk(run_agent: RunFn) -> None:
    settings = RunnerSettings(max_log_bytes=1024 * 1024, kill_grace_s=0.5, drain_timeout_s=1)
    endless = fake_profile("--transcript", str(TEXT), "--repeat-to", "10000000")  # far more than a MiB of output
    summary = await run_agent(endless, settings=settings)
    assert summary.outcome is RunOutcome.FAILED
    assert summary.reason == "run log passed 1048576 bytes (max_log_bytes)"
    assert summary.log_path.stat().st_size < 4 * 1024 * 1024  # stopped near the bound, not at the end of its output
    assert summary.process is not None and group_members(summary.process.pgid) == []
