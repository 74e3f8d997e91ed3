"""The sandbox each run and each gate works in, for this project: what it shows, and taking the work back after.

``Rooms`` decides from ``sandbox`` in project.toml and the machine whether runs are confined
(SPEC.md "Sandbox"), builds each run's ``Room`` (its worktree, its git quarantine, its temporary
directory, its CLI's state; never ``.gangline/`` nor the person's secrets), and when the run
ends takes its commits in and the CLI's refreshed sign-in back.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from gangline.agents import homes
from gangline.agents.registry import ADAPTERS
from gangline.agents.sandbox import Room, bwrap_path, confine, why_unavailable
from gangline.core.errors import RunnerError
from gangline.core.profiles import AgentProfile, CliKind, SandboxMode
from gangline.project.config import ProjectConfig
from gangline.project.paths import ProjectPaths
from gangline.repo import quarantine
from gangline.repo.gates import GateLike, GatesReport, run_gates
from gangline.repo.quarantine import GitRoom, Harvest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Opened:
    """One run's room, and what closing it must take back."""

    room: Room
    bwrap: str
    base: Path  # the run's own directory (temporary files, git quarantine), removed when it closes
    git: GitRoom | None
    sign_in: homes.SignIn | None


class Rooms:
    """The project's sandbox: whether it is in force, and each run's room."""

    def __init__(
        self,
        paths: ProjectPaths,
        mode: SandboxMode,
        env: Mapping[str, str],
        writable: tuple[str, ...] = (),
        hidden: tuple[str, ...] = (),
    ) -> None:
        self.paths = paths
        self.mode = mode
        self.home = Path(env.get("HOME") or os.path.expanduser("~"))
        self._env = dict(env)
        self._writable = tuple(self._expand(p) for p in writable)
        self._hidden = tuple(self._expand(p) for p in hidden)

    @classmethod
    def of(cls, paths: ProjectPaths, config: ProjectConfig, env: Mapping[str, str]) -> Rooms:
        """The rooms project.toml asks for."""
        return cls(paths, config.sandbox, env, config.sandbox_writable, config.sandbox_hidden)

    def bwrap(self) -> str | None:
        """The bwrap to confine runs with, None when runs go unconfined; RunnerError when ``required`` cannot be met."""
        if self.mode is SandboxMode.OFF:
            return None
        found = bwrap_path()
        if found is None and self.mode is SandboxMode.REQUIRED:
            raise RunnerError("sandbox", f'sandbox = "required", but {why_unavailable()}')
        return found

    def describe(self) -> str:
        """What is in force, in a line (doctor, status)."""
        if self.mode is SandboxMode.OFF:
            return 'off (sandbox = "off"): agents and gates run with the server\'s own access'
        found = bwrap_path()
        if found is not None:
            return f"on ({found}): each run sees the machine read-only but its worktree; .gangline/ is hidden"
        if self.mode is SandboxMode.REQUIRED:
            return f"required but unavailable: {why_unavailable()}; no agent or gate will start"
        return f"off (auto, unavailable): {why_unavailable()}"

    async def open(
        self, run_id: str, profile: AgentProfile, workdir: Path, branch: str | None, *, in_git: bool = True
    ) -> Opened | None:
        """The room of an agent run in ``workdir`` (whose item branch is ``branch``), or None when unconfined.

        ``in_git`` False: the workdir is no git worktree (a chat agent's), so there is no quarantine.
        """
        bwrap = self.bwrap()
        if bwrap is None:
            return None
        base = self._fresh(self.paths.runs_dir / f"{run_id}.sandbox")
        git = await quarantine.prepare(workdir, base / "git", branch) if in_git else None
        cli = homes.HOMES[profile.cli]
        home = Path(profile.env.get("HOME") or self.home)  # a profile may give its CLI a HOME of its own
        state = self.paths.state_dir / "agents" / profile.name / cli.subdir
        sign_in = homes.bring_in(cli, state, homes.person_dir(cli, {**self._env, **profile.env}, home))
        env = self._temp_env(base) | (git.env() if git else {})
        own_state = ADAPTERS[profile.cli].state_dirs(profile)
        moved = list(git.moved()) if git else []
        git_dirs = (git.private, git.objects) if git else ()
        if cli.env_var is not None:
            env[cli.env_var] = str(state)
            own_state = (state, *own_state)
        if cli.shown_at is not None:
            shown = home / cli.shown_at
            shown.mkdir(parents=True, exist_ok=True)  # the mount point, on a file system shown read-only
            moved.append((state, shown))
        if profile.cli in (CliKind.CLAUDE, CliKind.FAKE) and os.geteuid() == 0:
            env["IS_SANDBOX"] = "1"  # Claude Code allows bypassPermissions as root only in a sandbox: this is one
        room = Room(
            workdir=workdir,
            writable=(*git_dirs, base / "tmp", self._cache(), *own_state, *self._extra()),
            moved=tuple(moved),
            readable=(self.paths.hooks_dir, self.paths.runs_dir / f"{run_id}.settings.json"),
            hidden=self._hidden_paths(home),
            env=env,
        )
        return Opened(room, bwrap, base, git, sign_in)

    def for_gates(self, key: str, workdir: Path) -> Opened | None:
        """The room the gates run in: the worktree writable, git read-only, nothing of .gangline/ shown."""
        bwrap = self.bwrap()
        if bwrap is None:
            return None
        base = self._fresh(self.paths.runs_dir / f"{key}.gates.sandbox")
        room = Room(
            workdir=workdir,
            writable=(base / "tmp", self._cache(), *self._extra()),
            readable=(self.paths.hooks_dir,),
            hidden=self._hidden_paths(),
            env=self._temp_env(base),
        )
        return Opened(room, bwrap, base, None, None)

    async def run_gates(
        self, gates: Sequence[GateLike], key: str, workdir: Path, env: Mapping[str, str], noun: str = "gate"
    ) -> GatesReport:
        """The gates (or hooks: ``noun``) in ``workdir``, each in the gates' room (``for_gates``) when runs are
        confined."""
        opened = self.for_gates(key, workdir)
        try:
            confined = (lambda argv: confine(argv, opened.room, opened.bwrap)) if opened is not None else None
            return await run_gates(gates, workdir, env, confine=confined, noun=noun)
        finally:
            if opened is not None:
                await self.close(opened)

    async def close(self, opened: Opened) -> Harvest | None:
        """Take the run's commits in and the CLI's refreshed sign-in back; remove the run's own directory."""
        try:
            harvest = await quarantine.harvest(opened.git) if opened.git is not None else None
            if opened.sign_in is not None:
                for path in homes.take_back(opened.sign_in):
                    log.info("sign-in refreshed", extra={"action": "sign_in_back", "path": str(path)})
            return harvest
        finally:
            shutil.rmtree(opened.base, ignore_errors=True)

    async def recover(self) -> list[tuple[str, Harvest]]:
        """After a restart: take in what runs of a killed server committed in their sandboxes; (run id, harvest)."""
        found = []
        for base in sorted(self.paths.runs_dir.glob("*.sandbox")) if self.paths.runs_dir.is_dir() else []:
            git = quarantine.left_behind(base / "git")
            if git is not None:
                try:
                    harvest = await quarantine.harvest(git)
                except OSError as err:  # what a kill left cannot stop the server that starts after it
                    harvest = Harvest(0, refused=f"what the run left could not be read: {err}")
                found.append((base.name.removesuffix(".sandbox"), harvest))
            shutil.rmtree(base, ignore_errors=True)
        return found

    # --- the parts ------------------------------------------------------------------------

    def _fresh(self, base: Path) -> Path:
        shutil.rmtree(base, ignore_errors=True)
        (base / "tmp").mkdir(parents=True, mode=0o700)
        return base

    def _extra(self) -> tuple[Path, ...]:
        """``sandbox_writable``: those that exist (bwrap cannot show what is not there)."""
        return tuple(path for path in self._writable if path.exists())

    def _cache(self) -> Path:
        cache = self.paths.state_dir / "cache"
        cache.mkdir(exist_ok=True)
        return cache

    def _temp_env(self, base: Path) -> dict[str, str]:
        tmp = str(base / "tmp")
        cache = str(self._cache())
        return {"TMPDIR": tmp, "TMP": tmp, "TEMP": tmp, "CLAUDE_CODE_TMPDIR": tmp, "XDG_CACHE_HOME": cache,
                "npm_config_cache": f"{cache}/npm"}  # fmt: skip

    def _hidden_paths(self, *more_homes: Path) -> tuple[Path, ...]:
        in_homes = (h / name for h in dict.fromkeys((self.home, *more_homes)) for name in homes.HIDDEN_IN_HOME)
        return (self.paths.state_dir, *in_homes, *self._hidden)

    def _expand(self, path: str) -> Path:
        return self.home / path[2:] if path.startswith("~/") else Path(path)
