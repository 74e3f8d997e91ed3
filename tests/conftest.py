"""Shared fixtures: an empty repository, and a runner with short limits driving the fake CLI through a real PTY."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from gangline.agents.bus import Bus
from gangline.agents.runner import Runner, RunRequest, RunSummary
from gangline.core.budget import Price
from gangline.core.events import Usage
from gangline.core.profiles import AgentProfile, RunnerSettings
from kits.helpers import FAST, RunFn
from kits.postgres import postgres, project_database  # noqa: F401  (one PostgreSQL cluster for the session)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """An empty git repository to work in."""
    path = tmp_path / "repo"
    path.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=path, check=True)
    return path


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
        price: Price | None = None,
        session_usage: Usage | None = None,
    ) -> RunSummary:
        runner = Runner(settings, tmp_path / "runs", env if env is not None else dict(os.environ))
        request = RunRequest(
            f"run-{next(counter)}", profile, prompt, cwd or tmp_path, resume, price=price, session_usage=session_usage
        )
        return await runner.run(request, bus)

    return go
