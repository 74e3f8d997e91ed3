"""Running git: one awaitable call per command that never prompts, pages or opens an editor."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from gangline.agents.processes import kill_and_reap
from gangline.core.errors import GitError

# The identity of commits gangline makes itself, so a repository without user.name still
# works; signing is off because a pinentry nobody can see would wait forever.
GANGLINE_COMMITTER = (
    "-c",
    "user.name=gangline",
    "-c",
    "user.email=gangline@localhost",
    "-c",
    "commit.gpgsign=false",
)

_REAP_S = 5.0
_FIXED_ENV = {
    "LC_ALL": "C",  # messages we show people and parse stay in one language
    "GIT_TERMINAL_PROMPT": "0",  # fail instead of asking for credentials on a terminal nobody watches
    "GIT_EDITOR": "true",
    "GIT_SEQUENCE_EDITOR": "true",
    "GIT_PAGER": "cat",
    "GIT_MERGE_AUTOEDIT": "no",
}

# Set by git for its hooks: inherited by a server (or test run) started from a hook, they
# would point every command at that hook's repository or index instead of ``cwd``.
_REPO_LOCATING_ENV = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
    "GIT_PREFIX",
)


@dataclass(frozen=True)
class GitResult:
    returncode: int
    stdout: str
    stderr: str


def git_env(env: Mapping[str, str] | None) -> dict[str, str]:
    """The environment git runs in: ``env`` (default: this process's own) made non-interactive.

    The default is the server's own environment on purpose: git must read the same HOME and
    XDG config as the person's git, or the two would disagree about what is ignored or trusted.
    """
    base = dict(os.environ if env is None else env)
    for name in _REPO_LOCATING_ENV:
        base.pop(name, None)
    return base | _FIXED_ENV


async def git(
    cwd: Path,
    *args: str,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 120,
) -> GitResult:
    """Run ``git *args`` in ``cwd``; raise GitError if it fails (when ``check``), times out or cannot start."""
    try:
        proc = await asyncio.create_subprocess_exec(
            "git",
            *args,
            cwd=cwd,
            env=git_env(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its hooks join its group, so a timeout can kill them too
        )
    except OSError as exc:
        raise GitError(args, cwd, None, str(exc)) from exc
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    except TimeoutError:
        await kill_and_reap(proc, _REAP_S)
        raise GitError(args, cwd, None, f"no answer after {timeout_s:g} s; killed") from None
    finally:
        if proc.returncode is None:  # cancelled: nothing of git's may outlive the caller
            await kill_and_reap(proc, _REAP_S)
    result = GitResult(proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace"))
    if check and result.returncode != 0:
        raise GitError(args, cwd, result.returncode, result.stderr)
    return result
