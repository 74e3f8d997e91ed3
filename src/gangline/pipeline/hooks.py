"""The project's hooks run where the pipeline works (SPEC.md "Hooks"): in the gates' sandbox, bounded, recorded.

Each point's commands (``core.hooks.steps``) run the way gates run (``Rooms.run_gates``), and their
results are kept with the item's gate results, their point as context, with a ``hooks_passed`` or
``hooks_failed`` event. A failed hook is a failed check: the callers treat its report as they treat
failed gates. ``after_create`` runs once per item worktree, its commands kept once they pass in the
worktree's own git directory (so a worktree deleted by hand and made again prepares again, and an
after_create added to project.toml or changed there later reaches the worktrees already there); in the
merge workspace, which every squash cleans, it runs before each merge's gates.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path

from gangline.core.hooks import HookPoint
from gangline.core.items import Item
from gangline.core.profiles import Role
from gangline.pipeline.runs import AgentRuns
from gangline.project.config import ProjectConfig
from gangline.repo.gates import GatesReport
from gangline.repo.worktrees import private_dir
from gangline.store import Store

CREATED = "gangline-created"  # in a worktree's own git directory: its after_create hooks passed


class Hooks:
    """The hooks of the project's current configuration (``config`` is replaced when project.toml changes)."""

    def __init__(self, config: ProjectConfig, store: Store, agents: AgentRuns, env: Mapping[str, str]) -> None:
        self.config = config
        self.store = store
        self.agents = agents
        self.env = env

    def env_for(self, item: Item, key: str) -> dict[str, str]:
        """What the item's gates and hooks carry: the server's environment and the item's variables."""
        return {**self.env, **self.agents.env_for(item, Role.CODER, key)}

    async def run(self, item: Item, point: HookPoint, cwd: Path, run_id: str | None = None) -> GatesReport | None:
        """``point``'s commands in ``cwd``, stopping at the first that fails; None when it has none."""
        steps = self.config.hook_steps(point)
        if not steps:
            return None
        key = f"{item.id}-{point.value}"
        env = {**self.env_for(item, run_id or key), "GANGLINE_HOOK": point.value}
        report = await self.agents.rooms.run_gates(steps, key, cwd, env, noun="hook")
        results = [asdict(result) for result in report.results]
        self.store.record_gates(item.id, run_id, point.value, results, report.passed, noun="hook")
        return report

    async def prepare(self, item: Item, worktree: Path) -> GatesReport | None:
        """``after_create`` in the item's worktree unless these same commands passed there already."""
        own = private_dir(worktree)
        commands = "\n".join(step.command for step in self.config.hook_steps(HookPoint.AFTER_CREATE))
        marker = own / CREATED if own is not None else None
        if marker is not None and marker.exists() and marker.read_text(encoding="utf-8") == commands:
            return None
        report = await self.run(item, HookPoint.AFTER_CREATE, worktree)
        if marker is not None and report is not None and report.passed:
            marker.write_text(commands, encoding="utf-8")
        return report

    async def before_run(self, item: Item, worktree: Path) -> GatesReport | None:
        """What must pass before an agent starts in the item's worktree: its preparation, then ``before_run``."""
        prepared = await self.prepare(item, worktree)
        if prepared is not None and not prepared.passed:
            return prepared
        return await self.run(item, HookPoint.BEFORE_RUN, worktree)


def failure(report: GatesReport | None) -> str | None:
    """What a failed report says for the next prompt or hold; None when it passed or nothing ran."""
    return None if report is None or report.passed else report.failure_summary()
