"""Helpers every test tier shares: real git repositories, the gangline command as a person runs it, runs' records."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from gangline.agents.runlog import replay
from gangline.agents.runner import RunSummary
from gangline.core.events import Record
from gangline.core.items import Item, Kind
from gangline.core.profiles import AgentProfile, CliKind, RunnerSettings
from gangline.core.stages import ItemState, Stage

TESTS = Path(__file__).resolve().parents[1]
TRANSCRIPTS = TESTS / "transcripts"

FAST = RunnerSettings(inactivity_timeout_s=20, kill_grace_s=0.5, drain_timeout_s=2)


def fake_profile(*extra: str, **fields: Any) -> AgentProfile:
    return AgentProfile(name="fake", cli=CliKind.FAKE, extra_args=tuple(extra), **fields)


def records(summary: RunSummary) -> list[Record]:
    return list(replay(summary.log_path))


def events_of(summary: RunSummary, kind: type) -> list[Any]:
    return [r.event for r in records(summary) if isinstance(r.event, kind)]


RunFn = Callable[..., Coroutine[Any, Any, RunSummary]]


def make_item(**fields: Any) -> Item:
    """An item as the store would return it; ``fields`` override the plain defaults."""
    values: dict[str, Any] = {
        "id": 1, "slug": "add-login", "kind": Kind.STORY, "title": "Add login", "body": "", "criteria": (),
        "depends_on": (), "priority": 0, "pinned_agent": None, "qa_mode": None, "state": ItemState(Stage.BACKLOG),
        "retries": 0, "merge_attempts": 0, "session_id": None, "parked_until": None, "start_after": None,
        "archive_at": None, "merged_commit": None, "merged_tip": None, "created_at": 0.0, "updated_at": 0.0,
    }  # fmt: skip
    return Item(**{**values, **fields})


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def commit_file(cwd: Path, name: str, text: str, message: str = "change") -> str:
    (cwd / name).parent.mkdir(parents=True, exist_ok=True)
    (cwd / name).write_text(text)
    git(cwd, "add", name)
    git(cwd, "commit", "-q", "-m", message)
    return git(cwd, "rev-parse", "HEAD")


def new_repo(path: Path, *files: tuple[str, str, str]) -> Path:
    """A repository on ``main`` with a local identity and one commit per (name, text, message)."""
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.name", "Test Person")
    git(path, "config", "user.email", "person@example.com")
    for name, text, message in files:
        commit_file(path, name, text, message)
    return path


def cli_env(**extra: str) -> dict[str, str]:
    """The environment a CLI test runs ``gangline`` in: wide, uncoloured, no server token."""
    base = {k: v for k, v in os.environ.items() if k not in ("GANGLINE_TOKEN", "FORCE_COLOR", "TTY_COMPATIBLE")}
    return {**base, "COLUMNS": "200", **extra}


def gangline(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``python -m gangline ARGS`` as a person runs it: a real process, its output and exit code."""
    return subprocess.run(
        [sys.executable, "-m", "gangline", *args],
        cwd=cwd,
        env=env if env is not None else cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def ok(out: subprocess.CompletedProcess[str]) -> str:
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    return out.stdout


def initialised_repo(path: Path) -> Path:
    """A repository on main with one commit and ``gangline init`` run in it."""
    new_repo(path, ("README.md", "# project\n", "initial"))
    ok(gangline("init", cwd=path))
    return path


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
    except OSError:
        return False
    return state != b"Z"
