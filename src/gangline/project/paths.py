"""Where a project's files live (``.gangline/`` in the repository's top level), and finding that top level."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from gangline.core.errors import ConfigError
from gangline.core.guide import GUIDE


@dataclass(frozen=True)
class ProjectPaths:
    """Where a project's files live; ``root`` is the repository's top level."""

    root: Path

    @property
    def state_dir(self) -> Path:
        return self.root / ".gangline"

    @property
    def config_file(self) -> Path:
        return self.state_dir / "project.toml"

    @property
    def guide_file(self) -> Path:
        return self.state_dir / "guide.md"

    @property
    def db_file(self) -> Path:
        return self.state_dir / "state.db"

    @property
    def runs_dir(self) -> Path:
        return self.state_dir / "runs"

    @property
    def worktrees_dir(self) -> Path:
        return self.state_dir / "worktrees"

    @property
    def merge_dir(self) -> Path:
        return self.state_dir / "merge"

    @property
    def hooks_dir(self) -> Path:
        return self.state_dir / "hooks"  # the base-branch guard's git hooks (repo.baseguard)

    @property
    def node_hooks_dir(self) -> Path:
        return self.state_dir / "node-hooks"  # the hook build nodes' pushes run (repo.nodepush)


def find_root(start: Path) -> Path:
    """The top level of the git work tree holding ``start``, or ConfigError."""
    top = git_output(start, "rev-parse", "--show-toplevel")
    if not top:
        message = "not inside a git repository; run gangline inside the repository it should work on"
        raise ConfigError(str(start), message)
    return Path(top)


def git_output(cwd: Path, *args: str) -> str | None:
    """``git args`` run in ``cwd``: its stdout stripped, or None when it fails."""
    if not cwd.is_dir():
        raise ConfigError(
            str(cwd), "expected a directory, got nothing there" if not cwd.exists() else "not a directory"
        )
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=60, stdin=subprocess.DEVNULL
        )
    except FileNotFoundError:
        raise ConfigError("git", "not found on PATH; gangline needs git") from None
    except (OSError, subprocess.TimeoutExpired) as err:
        raise ConfigError("git", f"could not run git {' '.join(args)}: {err}") from None
    return done.stdout.strip() if done.returncode == 0 else None


def shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except (ValueError, OSError):
        return str(path)


def read_guide(paths: ProjectPaths) -> str:
    """The project's guide for agents (``.gangline/guide.md``), or the built-in one when there is none."""
    try:
        return paths.guide_file.read_text(encoding="utf-8")
    except FileNotFoundError:
        return GUIDE
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(str(paths.guide_file), f"cannot be read: {err}") from None
