"""How an agent run ended, as the pipeline's jobs read it: here, or on a build node with what that node ran there."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from gangline.agents.runner import RunSummary
from gangline.core.hooks import HOOK_POINTS, HookPoint
from gangline.core.nodewire import FinishIn
from gangline.core.policy import RunEnding
from gangline.core.reports import QaVerdict
from gangline.repo.gates import GateResult, GatesReport


@dataclass(frozen=True)
class AgentResult:
    run_id: str
    summary: RunSummary
    ending: RunEnding
    qa_verdict: QaVerdict | None = None  # reported through MCP (report_qa_result); preferred to the final message
    merge_failure: str | None = None  # a mergemaster's report_merge_failure
    gates: GatesReport | None = None  # run on the build node that ran the agent ([nodes] gates = "node")
    left_dirty: tuple[str, ...] = ()  # what the agent left uncommitted on its build node
    # The hooks its build node ran around it there, by point; None: it ran here, and so do its hooks.
    node_hooks: dict[HookPoint, GatesReport] | None = None


class Unready(Exception):
    """The hooks that ready the worktree for a run here failed (``ready`` said why): no agent was started."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


Ready = Callable[[], Awaitable[str | None]]  # a run here: its before_run hooks' failure, or None


def from_node(result: AgentResult, end: FinishIn | None) -> AgentResult:
    """``result`` with what its build node reported: the gates and hooks it ran there, what it left uncommitted
    (None: it reported nothing, its lease lapsed or its offer was withdrawn; its hooks were still not ours)."""
    if end is None:
        return replace(result, node_hooks={})
    gates = _report(end.gates, "gate") if end.gates is not None else None
    hooks = {HookPoint(point): _report(ran, "hook") for point, ran in end.hooks.items() if point in HOOK_POINTS}
    return replace(result, gates=gates, left_dirty=tuple(end.dirty), node_hooks=hooks)


def _report(results: list[dict[str, Any]], noun: str) -> GatesReport:
    return GatesReport(tuple(GateResult(**result) for result in results), noun)
