"""The jobs that move one item: code (then gates), review, merge, archive. Each is one async call.

A job reads the item, does its work, and ends with one compare-and-set write through the store.
If a person changed the item meanwhile (held, frozen, demoted), that write fails or is skipped:
the person wins and the job records only what it observed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gangline.core.errors import VerdictError
from gangline.core.hooks import HookPoint
from gangline.core.items import Item, Kind
from gangline.core.messages import messages_prompt
from gangline.core.policy import AfterRun, Next, after_check, retry_or_block
from gangline.core.profiles import AgentProfile, QaMode, Role
from gangline.core.records import REASON_CHARS
from gangline.core.reports import QaVerdict, parse_qa_verdict
from gangline.core.scheduler import Step
from gangline.core.stages import Facts, Stage, Trigger
from gangline.core.types import SERVER
from gangline.pipeline.decisions import PAUSED, SWITCHED, apply_decision
from gangline.pipeline.hooks import failure, unready_there
from gangline.pipeline.jobbase import JobBase
from gangline.pipeline.merge import Merger
from gangline.pipeline.results import AgentResult, Unready
from gangline.project.config import ProjectConfig
from gangline.repo.gates import GatesReport
from gangline.repo.worktrees import worktree_path

log = logging.getLogger(__name__)

NO_REPORT = (
    "A spike's result is a written report, and you gave none. Give your findings as your final message "
    "(or send them with the submit_report tool)."
)
SPIKE_HELD = "its report waits for a person: read it, then close it, or tell its coder what is missing"
MAX_REPORT = 100_000  # characters of a spike's report kept


@dataclass
class Pipeline(JobBase):
    """The jobs; the orchestrator builds one and calls them."""

    merger: Merger = field(init=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.merger = Merger(self.config, self.store, self.worktrees, self.agents, self.merge_checks, self.clock)

    def reconfigure(self, config: ProjectConfig) -> None:
        super().reconfigure(config)
        self.merger.config = config

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
        if (unready := failure(await self.hooks.prepare(item, path))) is not None:
            self._check_failed(item, unready)  # the agent does not start in a worktree its hooks could not ready
            return
        try:
            result = await self._code_once(item, profile, path, item.feedback)
            tried = {profile.name}
            while (fallback := self._fallback(item, Stage.CODING, result, profile, tried)) is not None:
                profile = fallback
                tried.add(profile.name)
                item = self.store.get_item(item.id)
                result = await self._code_once(item, profile, path, SWITCHED)
        except Unready as err:  # before_run failed here: no agent started
            self._check_failed(self.store.get_item(item.id), err.why)
            return
        if (unready := unready_there(result)) is not None:
            self._check_failed(self.store.get_item(item.id), unready, result.run_id)
            return
        await self._after_coder(result, profile, await self.hooks.after(item, result, path))

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
        result = await self.agents.run(
            item, profile, prompt, path, resume, attempt, fresh, self.hooks.ready(item, path)
        )
        self.hooks.took(item, result)
        if unready_there(result) is None:  # else its agent never started: they wait for the next run
            self.store.deliver_messages([message.id for message in waiting], result.run_id)
        return result

    async def _after_coder(self, result: AgentResult, profile: AgentProfile, after: str | None) -> None:
        """``after``: how its after_run hooks failed, which fails the work as failed gates do."""
        item = self.store.get_item(_item_id(result.run_id))
        session = result.summary.session_id or item.session_id
        decision = self._decide(item, Stage.CODING, result, profile)
        if decision.next is Next.CHECK:
            if after is not None:
                decision = AfterRun(Next.RETRY, after)
            else:
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

    def _check_failed(self, item: Item, why: str, run_id: str | None = None) -> None:
        """A check that is not the agent's (a hook) failed: a failed attempt in the item's stage, as failed gates
        are; ``why`` is the next prompt, and the item is blocked once its retries are spent."""
        decision = retry_or_block(item.retries + 1, self.config.max_retries, why)
        apply_decision(self.store, item, decision, run_id, item.session_id, retries=item.retries + 1)

    async def merge_checks(self, item: Item, workspace: Path, run_id: str | None, context: str) -> GatesReport:
        """What a squash must pass in the merge workspace, which each squash cleans: after_create, then the gates."""
        prepared = await self.hooks.run(item, HookPoint.AFTER_CREATE, workspace)
        if prepared is not None and not prepared.passed:
            return prepared
        return await self.gates(item, workspace, run_id, context)

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
        if (unready := failure(await self.hooks.prepare(item, path))) is not None:
            self._check_failed(item, unready)
            return
        # Three read-only git questions, asked at once: they lie on the coder → QA handoff.
        ahead, tip, diff = await asyncio.gather(
            self.worktrees.commits_ahead(item.id, item.slug),
            self.worktrees.branch_tip(item.id, item.slug),
            self.worktrees.diff_against_base(item.id, item.slug),
        )
        try:
            result, profile = await self._review_once(item, profile, path, diff)
        except Unready as err:
            self._check_failed(self.store.get_item(item.id), err.why)
            return
        if (unready := unready_there(result)) is not None:
            self._check_failed(self.store.get_item(item.id), unready, result.run_id)
            return
        after = await self.hooks.after(item, result, path)
        item = self.store.get_item(item.id)
        decision = self._decide(item, Stage.QA, result, profile)
        if decision.next is not Next.CHECK:
            apply_decision(self.store, item, decision, result.run_id, item.session_id)
            return
        if after is not None:
            self._check_failed(item, after, result.run_id)
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

    async def _review_once(
        self, item: Item, profile: AgentProfile, path: Path, diff: str
    ) -> tuple[AgentResult, AgentProfile]:
        """One QA run, or a fallback's for a rate-limited profile; the run's result and whose it was."""
        tried: set[str] = set()
        while True:
            tried.add(profile.name)
            prompt = self._render(profile, item, Role.QA, item.retries + 1, path, item.feedback, diff)
            ready = self.hooks.ready(item, path)
            result = await self.agents.run(item, profile, prompt, path, None, item.retries + 1, ready=ready)
            self.hooks.took(item, result)
            fallback = self._fallback(item, Stage.QA, result, profile, tried)
            if fallback is None:
                return result, profile
            profile = fallback

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

    async def retire(self, item: Item, keep_branch: bool = True) -> str | None:
        """Remove an item that is over's worktree when nothing uncommitted would be lost, its before_remove hooks
        run first; the event says which, and so does the answer (None: removed; else why it was kept).
        ``keep_branch``: its commits stay on its branch (closed, abandoned or superseded, never merged). A
        before_remove that fails keeps the worktree."""
        path = worktree_path(self.worktrees.root, item.id, item.slug)
        kept = await self.worktrees.would_keep(item.id, item.slug, item.merged_tip, keep_branch=keep_branch)
        if kept is None and path.is_dir():
            hooked = failure(await self.hooks.run(item, HookPoint.BEFORE_REMOVE, path))
            kept = (
                f"{hooked.splitlines()[0]} The worktree stays (the hook's output is on the item)." if hooked else None
            )
        if kept is not None:
            self.store.record_event("worktree_kept", SERVER, item_id=item.id, reason=kept)
            return kept
        pruned = await self.worktrees.prune(item.id, item.slug, item.merged_tip, keep_branch=keep_branch)
        self.store.record_event(
            "worktree_pruned" if pruned.pruned else "worktree_kept", SERVER, item_id=item.id, reason=pruned.reason
        )
        return None if pruned.pruned else pruned.reason


def _joined(*parts: str | None) -> str:
    return "\n\n".join(part for part in parts if part)


def _item_id(run_id: str) -> int:
    return int(run_id.split("-", 1)[0])
