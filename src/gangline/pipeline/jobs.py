"""The jobs that move one item: code (then gates), review, merge, archive. Each is one async call.

A job reads the item, does its work, and ends with one compare-and-set write through the store.
If a person changed the item meanwhile (held, frozen, demoted), that write fails or is skipped:
the person wins and the job records only what it observed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from gangline.core.errors import ConfigError, VerdictError
from gangline.core.items import Item, Kind
from gangline.core.messages import messages_prompt
from gangline.core.policy import AfterRun, Next, after_check, after_run, retry_or_block
from gangline.core.profiles import AgentProfile, QaMode, Role
from gangline.core.prompts import PromptContext, render_prompt
from gangline.core.records import REASON_CHARS
from gangline.core.reports import QaVerdict, parse_qa_verdict
from gangline.core.scheduler import Step
from gangline.core.stages import Facts, Stage, Trigger
from gangline.core.types import SERVER, Clock
from gangline.pipeline.decisions import PAUSED, SWITCHED, apply_decision
from gangline.pipeline.merge import Merger
from gangline.pipeline.runs import AgentResult, AgentRuns
from gangline.project.config import ProjectConfig
from gangline.repo.gates import GatesReport
from gangline.repo.worktrees import Worktrees, branch_name
from gangline.store import Store

log = logging.getLogger(__name__)

NO_REPORT = (
    "A spike's result is a written report, and you gave none. Give your findings as your final message "
    "(or send them with the submit_report tool)."
)
SPIKE_HELD = "its report waits for a person: read it, then close it, or tell its coder what is missing"
MAX_REPORT = 100_000  # characters of a spike's report kept


@dataclass
class Pipeline:
    """What every job needs; the orchestrator builds one and calls its jobs."""

    config: ProjectConfig
    store: Store
    worktrees: Worktrees
    agents: AgentRuns
    env: Mapping[str, str]
    guide: str
    clock: Clock
    merger: Merger = field(init=False)

    def __post_init__(self) -> None:
        self.merger = Merger(self.config, self.store, self.worktrees, self.agents, self.gates, self.clock)

    async def do(self, step: Step, item: Item, started: Callable[[], None]) -> None:
        """The job ``step`` on ``item``; ``started`` is called once a START has moved it to coding."""
        if step is Step.START:
            item = await self.start(item)
            started()
            await self.code(item)
        elif step is Step.CODE:
            await self.code(item)
        elif step is Step.REVIEW:
            await self.review(item)
        elif step is Step.MERGE:
            await self.merge(item)
        else:
            await self.archive(item)

    # --- coding ----------------------------------------------------------------------------

    async def start(self, item: Item, actor: str = SERVER) -> Item:
        return self.store.transition(item.id, Trigger.START, actor, expected=item.state)

    async def code(self, item: Item) -> None:
        profile = self._profile(item, Role.CODER)
        path = await self.worktrees.ensure(item.id, item.slug)
        result = await self._code_once(item, profile, path, item.feedback)
        tried = {profile.name}
        while (fallback := self._fallback(item, Stage.CODING, result, profile, tried)) is not None:
            profile = fallback
            tried.add(profile.name)
            item = self.store.get_item(item.id)
            result = await self._code_once(item, profile, path, SWITCHED)
        await self._after_coder(result, profile)

    async def _code_once(self, item: Item, profile: AgentProfile, path: Path, feedback: str | None) -> AgentResult:
        attempt = item.retries + 1
        # A session is resumed only by the profile that made it: another CLI cannot read it.
        resume = (
            item.session_id if self.store.session_profile(item.id, item.session_id) in (None, profile.name) else None
        )
        waiting = self.store.messages(item.id, waiting_only=True)  # a person's words: this run takes them
        said = messages_prompt(waiting) if waiting else None
        fresh = _joined(self._render(profile, item, Role.CODER, attempt, path, feedback, None), said)
        if resume and (feedback or said):
            prompt = _joined(feedback, said)  # a retry or a message: in the same session, the new prompt
        else:
            resume, prompt = None, fresh
        # ``fresh`` too: where the session does not live (another build node), the run starts afresh.
        result = await self.agents.run(item, profile, prompt, path, resume, attempt, fresh)
        self.store.deliver_messages([message.id for message in waiting], result.run_id)
        return result

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

    async def _after_coder(self, result: AgentResult, profile: AgentProfile) -> None:
        item = self.store.get_item(_item_id(result.run_id))
        session = result.summary.session_id or item.session_id
        decision = self._decide(item, Stage.CODING, result, profile)
        if decision.next is Next.CHECK:
            check = self._check_report if item.kind is Kind.SPIKE else self._check_work
            decision = await check(item, result, session)
            if decision.next is Next.LEAVE:  # the gates passed and the item moved on
                return
            decision = retry_or_block(
                item.retries + 1, self.config.max_retries, after_check(result.ending, decision.reason)
            )
            apply_decision(self.store, item, decision, result.run_id, session, retries=item.retries + 1)
            return
        if decision.next is Next.LEAVE and item.stage is Stage.CODING and not item.state.frozen and session:
            # A person stopped (blocked) it: keep the session, so unblocking resumes the work.
            self.store.bookkeep(
                item.id,
                "session_kept",
                SERVER,
                expected=item.state,
                run_id=result.run_id,
                updates={"session_id": session, "feedback": PAUSED},
            )
            return
        apply_decision(self.store, item, decision, result.run_id, session)

    async def _check_work(self, item: Item, result: AgentResult, session: str | None) -> AfterRun:
        """The "work survived" rule: committed work that passes the gates advances, however the agent ended.
        A run on a build node reports what it left uncommitted there, and maybe its gates' results."""
        run_id = result.run_id
        path = await self.worktrees.ensure(item.id, item.slug)
        ahead, dirty = await asyncio.gather(  # both read-only, asked at once
            self.worktrees.commits_ahead(item.id, item.slug), self.worktrees.dirty_paths(path)
        )
        dirty = [*dirty, *result.left_dirty]
        if ahead == 0:
            return AfterRun(Next.RETRY, "You exited without committing any work. Do the item and commit it with git.")
        if dirty:
            listed = ", ".join(dirty[:20]) + (" ..." if len(dirty) > 20 else "")
            return AfterRun(
                Next.RETRY,
                f"You left uncommitted changes in the worktree: {listed}. Commit what belongs to the item and "
                "remove the rest; only committed work is reviewed and merged.",
            )
        if result.gates is not None:
            report = self.record_gates(item, run_id, "coding", result.gates, where="node")
        else:
            report = await self.gates(item, path, run_id, "coding")
        if not report.passed:
            return AfterRun(Next.RETRY, report.failure_summary())
        self.store.transition(
            item.id,
            Trigger.CODED,
            SERVER,
            expected=item.state,
            facts=Facts(commits_ahead=ahead),
            # The session stays the item's: a rejection or a person's message resumes it.
            updates={"feedback": None, "parked_until": None, "session_id": session},
            run_id=run_id,
        )
        return AfterRun(Next.LEAVE, "gates passed")

    async def _check_report(self, item: Item, result: AgentResult, session: str | None) -> AfterRun:
        """A spike's result is its written report (sent with ``submit_report``, else its final message); it needs no
        code, commits and gates are not asked for, and nothing of it is merged."""
        report = (self.store.get_item(item.id).report or result.summary.result_text or "").strip()
        if not report:
            return AfterRun(Next.RETRY, NO_REPORT)
        self.store.transition(
            item.id, Trigger.REPORTED, SERVER, expected=item.state, facts=Facts(reason=report[:REASON_CHARS]),
            updates={"feedback": None, "parked_until": None, "session_id": session, "report": report[:MAX_REPORT]},
            run_id=result.run_id,
        )  # fmt: skip
        return AfterRun(Next.LEAVE, "reported")

    async def gates(self, item: Item, cwd: Path, run_id: str | None, context: str) -> GatesReport:
        key = run_id or f"{item.id}-{context}"
        env = {**self.env, **self.agents.env_for(item, Role.CODER, key)}
        report = await self.agents.rooms.run_gates(self.config.gates, key, cwd, env)
        return self.record_gates(item, run_id, context, report)

    def record_gates(self, item: Item, run_id: str | None, context: str, report: GatesReport,
                     where: str | None = None) -> GatesReport:  # fmt: skip
        """The gates' results on the item, and whether they passed in its history (``where``: a node ran them)."""
        self.store.record_gates(item.id, run_id, context, [asdict(r) for r in report.results], report.passed, where)
        return report

    # --- qa --------------------------------------------------------------------------------

    async def review(self, item: Item) -> None:
        mode = item.qa_mode or self.config.qa_mode
        if mode is QaMode.SERVER and item.kind is Kind.SPIKE:
            self.store.hold(item.id, Trigger.HOLD_FOR_REVIEW, SERVER, SPIKE_HELD, expected=item.state)
            return
        if mode is QaMode.SERVER:
            ahead = await self.worktrees.commits_ahead(item.id, item.slug)
            self.store.transition(
                item.id,
                Trigger.QA_PASSED,
                SERVER,
                expected=item.state,
                facts=Facts(reason="gates passed", commits_ahead=ahead),
            )
            return
        profile = self._profile(item, Role.QA)
        path = await self.worktrees.ensure(item.id, item.slug)
        # Three read-only git questions, asked at once: they lie on the coder → QA handoff.
        ahead, tip, diff = await asyncio.gather(
            self.worktrees.commits_ahead(item.id, item.slug),
            self.worktrees.branch_tip(item.id, item.slug),
            self.worktrees.diff_against_base(item.id, item.slug),
        )
        tried: set[str] = set()
        while True:
            tried.add(profile.name)
            prompt = self._render(profile, item, Role.QA, item.retries + 1, path, item.feedback, diff)
            result = await self.agents.run(item, profile, prompt, path, None, item.retries + 1)
            fallback = self._fallback(item, Stage.QA, result, profile, tried)
            if fallback is None:
                break
            profile = fallback
        item = self.store.get_item(item.id)
        decision = self._decide(item, Stage.QA, result, profile)
        if decision.next is not Next.CHECK:
            apply_decision(self.store, item, decision, result.run_id, item.session_id)
            return
        problem = await self._qa_tampered(item, path, tip)
        try:
            if problem:
                raise VerdictError("qa", problem)
            verdict = result.qa_verdict or parse_qa_verdict(result.summary.result_text, len(item.criteria))
        except VerdictError as err:
            failed = retry_or_block(item.retries + 1, self.config.max_retries, f"QA gave no usable verdict: {err}")
            apply_decision(self.store, item, failed, result.run_id, item.session_id, retries=item.retries + 1)
            return
        self._judged(item, verdict, f"qa:{profile.name}", result.run_id, ahead)

    def _judged(self, item: Item, verdict: QaVerdict, actor: str, run_id: str, ahead: int) -> None:
        """A QA agent's verdict applied: its criteria checked; a pass merges (a spike's waits for a person), a fail
        sends the notes back to the coder."""
        marks = {c.index: c.passed for c in verdict.criteria}
        if marks:
            self.store.check_criteria(item.id, marks, actor)
        if verdict.verdict == "pass" and item.kind is Kind.SPIKE:
            held = f"QA passed ({verdict.summary or 'the report answers the criteria'}); {SPIKE_HELD}"
            self.store.hold(item.id, Trigger.HOLD_FOR_REVIEW, actor, held, expected=item.state, run_id=run_id)
        elif verdict.verdict == "pass":
            facts = Facts(reason=verdict.summary or "QA passed", commits_ahead=ahead)
            self.store.transition(item.id, Trigger.QA_PASSED, actor, expected=item.state, facts=facts,
                                  updates={"feedback": None}, run_id=run_id)  # fmt: skip
        else:
            notes = "\n".join(f"- criterion {c.index}: {c.note}" for c in verdict.criteria if not c.passed)
            self.reject(item, actor, f"QA rejected the work: {verdict.summary}\n{notes}".strip(), run_id)

    def reject(self, item: Item, actor: str, feedback: str, run_id: str | None = None) -> Item:
        """QA failed (agent or person): back to coding with the notes as the coder's next prompt."""
        retries = item.retries + 1
        item = self.store.transition(
            item.id,
            Trigger.QA_FAILED,
            actor,
            expected=item.state,
            facts=Facts(reason=feedback[:REASON_CHARS]),
            updates={"feedback": feedback, "retries": retries, "report": None},  # a spike reports again
            run_id=run_id,
        )
        decision = retry_or_block(retries, self.config.max_retries, feedback)
        if decision.next is Next.BLOCK:
            item = self.store.hold(item.id, Trigger.BLOCK, SERVER, decision.reason, expected=item.state)
        return item

    async def _qa_tampered(self, item: Item, path: Path, tip: str | None) -> str | None:
        if await self.worktrees.branch_tip(item.id, item.slug) != tip:
            return "the QA agent committed to the feature branch; QA must only review"
        dirty = await self.worktrees.dirty_paths(path)
        return f"the QA agent left changes in the worktree: {', '.join(dirty[:10])}" if dirty else None

    # --- merge and archive -----------------------------------------------------------------

    async def merge(self, item: Item) -> None:
        await self.merger.merge(item, self._render_merge)

    def _render_merge(self, item: Item, profile: AgentProfile, workspace: Path, feedback: str) -> str:
        return self._render(profile, item, Role.MERGEMASTER, item.merge_attempts + 1, workspace, feedback, None)

    async def archive(self, item: Item, actor: str = SERVER) -> None:
        self.store.transition(item.id, Trigger.ARCHIVE, actor, expected=item.state, updates={"archive_at": None})
        await self.retire(item, keep_branch=False)

    async def retire(self, item: Item, keep_branch: bool = True) -> None:
        """Remove an item that is over's worktree when nothing uncommitted would be lost; the event says which.
        ``keep_branch``: its commits stay on its branch (closed, abandoned or superseded, never merged)."""
        pruned = await self.worktrees.prune(item.id, item.slug, item.merged_tip, keep_branch=keep_branch)
        self.store.record_event(
            "worktree_pruned" if pruned.pruned else "worktree_kept", SERVER, item_id=item.id, reason=pruned.reason
        )

    # --- shared ----------------------------------------------------------------------------

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


def _joined(*parts: str | None) -> str:
    return "\n\n".join(part for part in parts if part)


def _item_id(run_id: str) -> int:
    return int(run_id.split("-", 1)[0])
