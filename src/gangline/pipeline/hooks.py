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
from gangline.pipeline.results import AgentResult, Ready
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
        return self._record(item, point, report, run_id)

    def _record(self, item: Item, point: HookPoint, report: GatesReport, run_id: str | None,
                where: str | None = None) -> GatesReport:  # fmt: skip
        return record(self.store, item, run_id, point.value, report, where)

    async def prepare(self, item: Item, worktree: Path) -> GatesReport | None:
        """``after_create`` in the item's worktree unless these same commands passed there already."""
        commands = [step.command for step in self.config.hook_steps(HookPoint.AFTER_CREATE)]
        if prepared(worktree, commands):
            return None
        report = await self.run(item, HookPoint.AFTER_CREATE, worktree)
        if report is not None and report.passed:
            mark_prepared(worktree, commands)
        return report

    def ready(self, item: Item, worktree: Path) -> Ready:
        """What must pass before an agent starts in the item's worktree here (it is prepared already): before_run.
        ``AgentRuns.run`` asks it only of a run it keeps; a build node runs its own."""

        async def before_run() -> str | None:
            return failure(await self.run(item, HookPoint.BEFORE_RUN, worktree))

        return before_run

    async def after(self, item: Item, result: AgentResult, worktree: Path) -> str | None:
        """How ``after_run`` failed (None: it passed, or there is none): run here, or as the run's build node
        ran it."""
        if result.node_hooks is None:
            return failure(await self.run(item, HookPoint.AFTER_RUN, worktree, result.run_id))
        return failure(result.node_hooks.get(HookPoint.AFTER_RUN))

    def took(self, item: Item, result: AgentResult) -> None:
        """The hooks a build node ran around ``result``'s run, recorded on the item as this server's are."""
        for point, report in (result.node_hooks or {}).items():
            self._record(item, point, report, result.run_id, where="node")


def unready_there(result: AgentResult) -> str | None:
    """How the hooks a build node runs before its agent failed: its checkout could not be readied, so the agent
    did not start there. None when they passed, or the run was this server's (``Unready`` says so here)."""
    before = (result.node_hooks or {}).get
    return failure(before(HookPoint.AFTER_CREATE)) or failure(before(HookPoint.BEFORE_RUN))


def record(store: Store, item: Item, run_id: str | None, context: str, report: GatesReport,
           where: str | None = None) -> GatesReport:  # fmt: skip
    """Gates' or hooks' results (``report.noun``) on the item, and whether they passed, in its history (``where``:
    a build node ran them); a hook's context is its point."""
    results = [asdict(result) for result in report.results]
    store.record_gates(item.id, run_id, context, results, report.passed, where, noun=report.noun)
    return report


def prepared(worktree: Path, commands: list[str]) -> bool:
    """Whether after_create's ``commands`` (these, as they are now) passed in ``worktree`` already."""
    own = private_dir(worktree)
    marker = own / CREATED if own is not None else None
    return marker is not None and marker.exists() and marker.read_text(encoding="utf-8") == "\n".join(commands)


def mark_prepared(worktree: Path, commands: list[str]) -> None:
    """Keep, in the worktree's own git directory, that after_create's ``commands`` passed there."""
    own = private_dir(worktree)
    if own is not None:
        (own / CREATED).write_text("\n".join(commands), encoding="utf-8")


def failure(report: GatesReport | None) -> str | None:
    """What a failed report says for the next prompt or hold; None when it passed or nothing ran."""
    return None if report is None or report.passed else report.failure_summary()
