"""Shared fixtures: a runner with short limits, and the fake CLI driven through a real PTY."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from gangline.bus import Bus
from gangline.config import AgentProfile, CliKind, RunnerSettings
from gangline.events import Record
from gangline.runlog import replay
from gangline.runner import Runner, RunRequest, RunSummary

TESTS = Path(__file__).resolve().parent
TRANSCRIPTS = TESTS / "transcripts"

FAST = RunnerSettings(inactivity_timeout_s=20, kill_grace_s=0.5, drain_timeout_s=2)


def fake_profile(*extra: str, **fields: Any) -> AgentProfile:
    return AgentProfile(name="fake", cli=CliKind.FAKE, extra_args=tuple(extra), **fields)


def records(summary: RunSummary) -> list[Record]:
    return list(replay(summary.log_path))


def events_of(summary: RunSummary, kind: type) -> list[Any]:
    return [r.event for r in records(summary) if isinstance(r.event, kind)]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """An empty git repository to work in."""
    path = tmp_path / "repo"
    path.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=path, check=True)
    return path


RunFn = Callable[..., Coroutine[Any, Any, RunSummary]]


@pytest.fixture
def run_agent(tmp_path: Path) -> RunFn:
    """``await run_agent(profile, settings=..., prompt=..., bus=...)`` -> RunSummary."""
    counter = iter(range(1, 10_000))

    async def go(
        profile: AgentProfile,
        settings: RunnerSettings = FAST,
        prompt: str = "do the thing",
        bus: Bus | None = None,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        resume: str | None = None,
    ) -> RunSummary:
        runner = Runner(settings, tmp_path / "runs", env if env is not None else dict(os.environ))
        request = RunRequest(f"run-{next(counter)}", profile, prompt, cwd or tmp_path, resume)
        return await runner.run(request, bus)

    return go
