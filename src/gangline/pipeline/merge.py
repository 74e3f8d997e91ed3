"""The merge stage: squash onto the latest base, gates, a mergemaster when needed, then advance the base.

Order matters for crash safety: the squash commit is recorded on the item *before* the base
branch is advanced (compare-and-set), so a server killed between the two finds, on restart,
that the base already contains the recorded commit and finishes the transition instead of
merging twice. Only this module ever moves the base branch (DESIGN invariant 2).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from gangline.core.errors import VerdictError
from gangline.core.events import RunOutcome
from gangline.core.items import Item
from gangline.core.policy import BUDGET_SUBTYPE
from gangline.core.profiles import AgentProfile, Role
from gangline.core.records import REASON_CHARS
from gangline.core.reports import MergeReport, parse_merge_report
from gangline.core.stages import Facts, IllegalTransition, Stage, Trigger
from gangline.core.types import SERVER, Clock
from gangline.pipeline.runs import AgentRuns
from gangline.project.config import ProjectConfig
from gangline.repo.gates import GatesReport
from gangline.repo.git import git
from gangline.repo.squash import AdvanceStatus, Squash, SquashStatus, advance_base, inspect_resolution, prepare_squash
from gangline.repo.worktrees import Worktrees, branch_name
from gangline.store import Store

Render = Callable[[Item, AgentProfile, Path, str], str]
Gates = Callable[[Item, Path, str | None, str], Awaitable[GatesReport]]

_MAX_BASE_MOVES = 5  # people pushing to base faster than a merge can finish: give up and say so


class Merger:
    def __init__(
        self,
        config: ProjectConfig,
        store: Store,
        worktrees: Worktrees,
        agents: AgentRuns,
        gates: Gates,
        clock: Clock,
    ) -> None:
        self.config = config
        self.store = store
        self.worktrees = worktrees
        self.agents = agents
        self.repo = worktrees.repo
        self.gates = gates
        self.clock = clock
        self._lock = asyncio.Lock()  # one merge workspace: one merge at a time

    async def merge(self, item: Item, render: Render) -> None:
        async with self._lock:
            item = self.store.get_item(item.id)
            if not _mergeable(item):
                return
            base = self.config.base_branch
            if item.merged_commit and await _is_ancestor(self.repo, item.merged_commit, base):
                # The base advanced before a crash; only the transition is missing.
                changed = await _files_changed(self.repo, f"{item.merged_commit}^", item.merged_commit)
                self._done(item, changed, item.merged_commit)
                return
            workspace = await self.worktrees.ensure_merge_workspace()
            feature = branch_name(item.id, item.slug)
            message = merge_message(item, feature, base)
            for _ in range(_MAX_BASE_MOVES):
                squash = await prepare_squash(workspace, base, feature, message)
                ready = await self._until_ready(item, workspace, squash, message, render)
                if ready is None:
                    return
                item, squash = ready
                tip = await self.worktrees.branch_tip(item.id, item.slug)
                item = self.store.bookkeep(
                    item.id,
                    "merge_ready",
                    SERVER,
                    expected=item.state,
                    updates={"merged_commit": squash.commit, "merged_tip": tip},
                    data={"commit": squash.commit, "files": squash.files_changed},
                )
                assert squash.commit is not None
                async with self.worktrees.lock:
                    advance = await advance_base(self.repo, base, squash.commit, squash.base_tip)
                if advance.status is AdvanceStatus.ADVANCED:
                    self._done(item, squash.files_changed, squash.commit)
                    return
                item = self.store.bookkeep(
                    item.id,
                    "base_not_advanced",
                    SERVER,
                    expected=item.state,
                    reason=advance.detail,
                    updates={"merged_commit": None},
                )
                if advance.status is AdvanceStatus.CHECKED_OUT_BLOCKED:
                    self.store.hold(item.id, Trigger.HOLD_FOR_REVIEW, SERVER, advance.detail, expected=item.state)
                    return
            self._fail(item, f"the base branch {base!r} kept moving while merging; retry the merge")

    async def _until_ready(
        self, item: Item, workspace: Path, squash: Squash, message: str, render: Render
    ) -> tuple[Item, Squash] | None:
        """A squash that passes the gates, with mergemaster help; None once the item is failed or held."""
        while True:
            if squash.status is SquashStatus.EMPTY:
                self._fail(item, f"the squash merge changes nothing on the base branch: {squash.detail}")
                return None
            if squash.status is SquashStatus.READY:
                report = await self.gates(item, workspace, None, "merge")
                if report.passed:
                    return item, squash
                problem = f"The squash merge fails the {report.noun}s.\n" + report.failure_summary()
            else:
                files = ", ".join(squash.conflicts) or "(unknown files)"
                problem = f"The squash merge onto the latest base conflicts in: {files}.\n{squash.detail}"
            masters = self.config.profiles_for(Role.MERGEMASTER)
            if not masters or item.merge_attempts >= self.config.max_retries:
                tried = f" after {item.merge_attempts} mergemaster attempt(s)" if masters else ""
                self._fail(item, f"{problem.splitlines()[0]}{tried}")
                return None
            item = self.store.bookkeep(
                item.id,
                "mergemaster",
                SERVER,
                expected=item.state,
                reason=problem[:REASON_CHARS],
                updates={"merge_attempts": item.merge_attempts + 1},
            )
            profile = masters[0]
            result = await self.agents.run(
                item, profile, render(item, profile, workspace, problem), workspace, None, item.merge_attempts
            )
            item = self.store.get_item(item.id)
            if not _mergeable(item):
                return None
            if result.ending.budget_note or result.ending.result_subtype == BUDGET_SUBTYPE:
                note = result.ending.budget_note or "budget exceeded"
                self.store.hold(item.id, Trigger.BLOCK, SERVER, note, expected=item.state)
                return None
            if result.ending.outcome is RunOutcome.REFUSED:  # its configuration: another attempt fails the same way
                self._fail(item, f"the mergemaster could not run: {result.ending.reason}")
                return None
            if result.merge_failure is not None:  # reported through MCP: no point in another attempt
                self._fail(item, f"the mergemaster gave up: {result.merge_failure}")
                return None
            said = _report_of(result.summary.result_text)
            if said is not None and not said.resolved:  # its final message said so
                self._fail(item, f"the mergemaster could not resolve it: {said.summary or 'it gave no reason'}")
                return None
            squash = await inspect_resolution(workspace, squash.base_tip, message)

    def _done(self, item: Item, files_changed: int, commit: str) -> None:
        archive_at = self.clock() + self.config.archive_after_s
        try:
            self.store.transition(
                item.id,
                Trigger.MERGED,
                SERVER,
                expected=item.state,
                facts=Facts(reason=f"merged as {commit[:12]}", files_changed=files_changed),
                updates={"archive_at": archive_at, "merged_commit": commit},
            )
        except IllegalTransition as err:
            self._fail(item, err.why)

    def _fail(self, item: Item, reason: str) -> None:
        self.store.hold(item.id, Trigger.MERGE_FAILED, SERVER, reason, expected=item.state)


def merge_message(item: Item, feature: str, base: str) -> str:
    return (
        f"{item.title} (#{item.id})\n\n"
        f"Squash-merged from {feature} onto {base} by gangline.\n\n"
        f"Gangline-Item: {item.id}\nGangline-Kind: {item.kind.value}\n"
    )


def _mergeable(item: Item) -> bool:
    return item.stage is Stage.MERGE and item.state.hold is None and not item.state.frozen


async def _is_ancestor(repo: Path, commit: str, base: str) -> bool:
    result = await git(repo, "merge-base", "--is-ancestor", commit, f"refs/heads/{base}", check=False)
    return result.returncode == 0


async def _files_changed(repo: Path, old: str, new: str) -> int:
    result = await git(repo, "diff", "--name-only", "-z", old, new)
    return len([name for name in result.stdout.split("\0") if name])


def _report_of(final_message: str | None) -> MergeReport | None:
    """The mergemaster's report when its final message is one; the workspace decides otherwise."""
    try:
        return parse_merge_report(final_message)
    except VerdictError:
        return None
