"""What every job of the pipeline shares: the project's settings and parts, the profile a role runs, its
prompt, the policy on how a run ended, a rate-limited profile's fallback, and the gates and hooks."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from gangline.core.errors import ConfigError
from gangline.core.items import Item
from gangline.core.policy import AfterRun, Next, after_run
from gangline.core.profiles import AgentProfile, Role
from gangline.core.prompts import PromptContext, render_prompt
from gangline.core.stages import Stage
from gangline.core.types import SERVER, Clock
from gangline.pipeline.hooks import Hooks, record
from gangline.pipeline.results import AgentResult
from gangline.pipeline.runs import AgentRuns
from gangline.project.config import ProjectConfig
from gangline.repo.gates import GatesReport
from gangline.repo.worktrees import Worktrees, branch_name
from gangline.store import Store


@dataclass
class JobBase:
    """What every job needs; the orchestrator builds a ``jobs.Pipeline`` and calls its jobs."""

    config: ProjectConfig
    store: Store
    worktrees: Worktrees
    agents: AgentRuns
    env: Mapping[str, str]
    guide: str
    clock: Clock
    hooks: Hooks = field(init=False)

    def __post_init__(self) -> None:
        self.hooks = Hooks(self.config, self.store, self.agents, self.env)

    def reconfigure(self, config: ProjectConfig) -> None:
        """An edited project.toml: the next job, gate and hook use it."""
        self.config = self.hooks.config = config

    async def gates(self, item: Item, cwd: Path, run_id: str | None, context: str) -> GatesReport:
        key = run_id or f"{item.id}-{context}"
        report = await self.agents.rooms.run_gates(self.config.gates, key, cwd, self.hooks.env_for(item, key))
        return self.record_gates(item, run_id, context, report)

    def record_gates(self, item: Item, run_id: str | None, context: str, report: GatesReport,
                     where: str | None = None) -> GatesReport:  # fmt: skip
        """The gates' results on the item, and whether they passed in its history (``where``: a node ran them)."""
        return record(self.store, item, run_id, context, report, where)

    def _profile(self, item: Item, role: Role) -> AgentProfile:
        if role is Role.CODER and item.pinned_agent:
            pinned = self.config.profile(item.pinned_agent)
            if pinned is None or pinned.role is not Role.CODER:
                raise ConfigError(f"item {item.id} pinned_agent", f"no coder profile named {item.pinned_agent!r}")
            return pinned
        profiles = self.config.profiles_for(role)
        if not profiles:
            raise ConfigError("agent", f"no [[agent]] profile with role {role.value!r} is configured")
        return profiles[0]

    def _render(
        self,
        profile: AgentProfile,
        item: Item,
        role: Role,
        attempt: int,
        path: Path,
        feedback: str | None,
        diff: str | None,
    ) -> str:
        ctx = PromptContext(
            item=item,
            role=role,
            attempt=attempt,
            base_branch=self.config.base_branch,
            branch=branch_name(item.id, item.slug),
            workspace=str(path),
            feedback=feedback,
            diff=diff,
            gates=tuple(g.command for g in self.config.gates),
            guide=self.guide,
        )
        return render_prompt(profile.prompt_template, ctx, f"agent {profile.name!r}.prompt_template")

    def _decide(self, item: Item, stage: Stage, result: AgentResult, profile: AgentProfile) -> AfterRun:
        policy = self.config.rate_limit
        automatable = item.stage is stage and item.state.hold is None and not item.state.frozen
        return after_run(
            result.ending,
            automatable=automatable,
            max_budget_usd=profile.max_budget_usd,
            now=self.clock(),
            default_wait_s=policy.default_wait_s,
            max_wait_s=policy.max_wait_s,
            margin_s=policy.margin_s,
        )

    def _fallback(
        self, item: Item, stage: Stage, result: AgentResult, profile: AgentProfile, tried: set[str]
    ) -> AgentProfile | None:
        """The profile to run now instead of parking, when a rate-limited profile names one not tried yet."""
        if profile.fallback is None or profile.fallback in tried:
            return None
        current = self.store.get_item(item.id)
        if self._decide(current, stage, result, profile).next is not Next.PARK:
            return None
        fallback = self.config.profile(profile.fallback)
        if fallback is None:  # checked when the configuration loads; a profile removed since is no fallback
            return None
        self.store.record_event(
            "agent_fallback",
            SERVER,
            item_id=item.id,
            run_id=result.run_id,
            reason=f"{profile.name} is {result.ending.reason}; {fallback.name} takes over",
            data={"from": profile.name, "to": fallback.name, "resets_at": result.ending.resets_at},
        )
        return fallback
