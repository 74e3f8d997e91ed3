"""The MCP tools an agent run uses, each confined by its token to the run's own item and worktree.

Every tool takes the item and the worktree from the run's grant, never from its arguments; an
``item_id`` argument is accepted only to refuse, clearly, one that names another item.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.exceptions import MCPError
from pydantic import BaseModel, Field

from gangline.core.items import Item, Kind
from gangline.core.profiles import Role
from gangline.core.records import GateRow, last_gates
from gangline.core.reports import QaVerdict, parse_qa_verdict
from gangline.core.validation import validated
from gangline.core.wire import GateOut, ItemOut, NewItem
from gangline.pipeline.grants import Grant
from gangline.repo.git import GANGLINE_COMMITTER, git
from gangline.repo.worktrees import branch_name, truncate_text
from gangline.server.mcp_access import FORBIDDEN, Hub, tool_errors, view

INSTRUCTIONS = (
    "gangline runs you on one work item in your own git worktree. These tools reach only that item and "
    "worktree: read it (status, get_item_todos), tick criteria, run the project's gates server-side, commit, "
    "and report (QA: report_qa_result; mergemaster: report_merge_failure)."
)
BODY_CHARS = 8000  # of an item's body in status; the prompt already carried all of it
OUTPUT_BYTES = 4000  # of a gate's output in get_gate_result
MAX_DIFF_BYTES = 200_000
MAX_STATUS_LINES = 200
MAX_FOLLOW_UPS = 10  # items one run may create: a loop in an agent must not flood the backlog
NOTE_CHARS = 4000


class CriterionResult(BaseModel):
    """One acceptance criterion as QA judged it."""

    index: int = Field(ge=1, description="The criterion's 1-based number.")
    passed: bool
    note: str = Field(default="", max_length=4000, description="Why, especially when it did not pass.")


def item_view(item: Item) -> dict[str, Any]:
    """The item as every door shows it, its body cut: the agent's prompt already carried all of it."""
    out = ItemOut.of(item)
    if len(out.body) > BODY_CHARS:
        out = out.model_copy(update={"body": out.body[:BODY_CHARS] + "\n[... cut ...]"})
    return view(out)


def criteria_view(item: Item) -> dict[str, Any]:
    rows = [{"index": i, "text": c.text, "checked": c.checked} for i, c in enumerate(item.criteria, 1)]
    return {"criteria": rows, "checked": sum(c.checked for c in item.criteria), "total": len(rows)}


def gate_view(row: GateRow, output: bool) -> dict[str, Any]:
    """A gate's result; with ``output``, the end of what it printed."""
    shown = view(GateOut.of(row))
    del shown["output"]
    if output:
        data = row.output.encode()
        tail = "[...]\n" + data[-OUTPUT_BYTES:].decode(errors="ignore")
        shown["output"] = row.output if len(data) <= OUTPUT_BYTES else tail
    return shown


def register(server: MCPServer, hub: Hub) -> None:
    """Add the agents' tools to ``server``; ``hub`` resolves each call's grant."""
    for fn in _item_tools(hub) + _gate_tools(hub) + _git_tools(hub) + _report_tools(hub):
        server.add_tool(tool_errors(fn))
    register_permission_tool(server, hub)


def register_permission_tool(server: MCPServer, hub: Hub) -> None:
    """Add ``prompt_permission`` alone: the chat agent's server has it beside the people's tools."""
    server.add_tool(tool_errors(_permission_tool(hub)), structured_output=False)


def _item_tools(hub: Hub) -> list[Any]:
    created: dict[str, int] = {}

    async def status(ctx: Context, item_id: int | None = None) -> dict[str, Any]:
        """Your work item (stage, body, acceptance criteria), the last gate results, your run and worktree."""
        grant, orch = hub.grant_of(ctx, item_id)
        item = orch.store.get_item(grant.item_id)
        return {
            "item": item_view(item),
            "run": {"id": grant.run_id, "role": grant.role.value},
            "branch": branch_name(item.id, item.slug),
            "base_branch": orch.config.base_branch,
            "worktree": str(grant.worktree),
            **criteria_view(item),
            "last_gates": [gate_view(g, output=False) for g in last_gates(orch.store.gate_results(item.id))],
        }

    async def get_item_todos(ctx: Context, item_id: int | None = None) -> dict[str, Any]:
        """Your item's acceptance criteria, numbered from 1, with whether each is checked."""
        grant, orch = hub.grant_of(ctx, item_id)
        return criteria_view(orch.store.get_item(grant.item_id))

    async def check_criterion(
        ctx: Context, index: int, checked: bool = True, item_id: int | None = None
    ) -> dict[str, Any]:
        """Mark acceptance criterion ``index`` (1-based) of your item as checked (or not)."""
        grant, orch = hub.grant_of(ctx, item_id)
        return criteria_view(orch.store.check_criteria(grant.item_id, {index: checked}, grant.actor))

    async def add_note(ctx: Context, text: str, item_id: int | None = None) -> dict[str, Any]:
        """Leave a note on your item's history for the people watching (progress, a decision, a doubt)."""
        grant, orch = hub.grant_of(ctx, item_id)
        if not text.strip():
            raise ToolError("text: a note needs some text")
        note = text.strip()[:NOTE_CHARS]
        event = orch.store.record_event("note", grant.actor, item_id=grant.item_id, run_id=grant.run_id, reason=note)
        return {"event_id": event}

    async def create_item(
        ctx: Context, title: str, body: str = "", criteria: list[str] | None = None, priority: int = 0
    ) -> dict[str, Any]:
        """Add a follow-up work item to the backlog (something you found that is outside your own item)."""
        grant, _ = hub.grant_of(ctx)
        if created.get(grant.run_id, 0) >= MAX_FOLLOW_UPS:
            raise ToolError(f"a run may create at most {MAX_FOLLOW_UPS} follow-up items")
        new = validated(NewItem, {"title": title, "body": body, "criteria": criteria or [], "priority": priority})
        item = hub.state.orders().add_item(new, grant.actor)
        created[grant.run_id] = created.get(grant.run_id, 0) + 1
        return {key: value for key, value in view(item).items() if key != "body"}

    return [status, get_item_todos, check_criterion, add_note, create_item]


def _gate_tools(hub: Hub) -> list[Any]:
    async def run_gates(ctx: Context, item_id: int | None = None) -> dict[str, Any]:
        """Run the project's gates (tests, linters) in your worktree on the server, as it will after you exit.

        Returns whether they passed and, for a failure, which gate and the end of its output.
        """
        grant, orch = hub.grant_of(ctx, item_id)
        if not orch.config.gates:
            return {"passed": True, "summary": "This project has no gates configured.", "gates": []}
        report = await orch.run_gates(orch.store.get_item(grant.item_id), grant.worktree, grant.run_id, "agent")
        names = ", ".join(r.name for r in report.results)
        summary = f"All {len(report.results)} gate(s) passed: {names}." if report.passed else report.failure_summary()
        rows = [
            {"name": r.name, "passed": r.passed, "exit_code": r.exit_code, "timed_out": r.timed_out}
            for r in report.results
        ]
        return {"passed": report.passed, "summary": summary, "gates": rows}

    async def get_gate_result(ctx: Context, item_id: int | None = None) -> dict[str, Any]:
        """The last gate results on your item (from run_gates or the server's own check), with their output's end."""
        grant, orch = hub.grant_of(ctx, item_id)
        return {"gates": [gate_view(g, output=True) for g in last_gates(orch.store.gate_results(grant.item_id))]}

    return [run_gates, get_gate_result]


def _git_tools(hub: Hub) -> list[Any]:
    async def git_status(ctx: Context, item_id: int | None = None) -> dict[str, Any]:
        """``git status`` of your worktree: its branch, changed and untracked files, and commits ahead of the base."""
        grant, orch = hub.grant_of(ctx, item_id)
        status = await git(grant.worktree, "status", "--porcelain=v1", "--branch", "--untracked-files=all")
        lines = status.stdout.splitlines()
        ahead = await git(grant.worktree, "rev-list", "--count", f"refs/heads/{orch.config.base_branch}..HEAD")
        changes = lines[1:]
        more = [f"... and {len(changes) - MAX_STATUS_LINES} more"] if len(changes) > MAX_STATUS_LINES else []
        branch = lines[0].removeprefix("## ") if lines else ""
        return {"branch": branch, "changes": changes[:MAX_STATUS_LINES] + more, "commits_ahead": int(ahead.stdout)}

    async def git_diff(
        ctx: Context, against_base: bool = False, max_bytes: int = 50_000, item_id: int | None = None
    ) -> dict[str, Any]:
        """The diff of your worktree: uncommitted changes against HEAD, or (against_base) everything your
        branch changed since it left the base branch. Cut to max_bytes (at most 200000)."""
        grant, orch = hub.grant_of(ctx, item_id)
        limit = max(1000, min(max_bytes, MAX_DIFF_BYTES))
        span = f"refs/heads/{orch.config.base_branch}...HEAD" if against_base else "HEAD"
        diff = await git(grant.worktree, "diff", "--no-color", "--no-ext-diff", span)
        shown: dict[str, Any] = {"diff": truncate_text(diff.stdout, limit, "diff")}
        if not against_base:  # git diff leaves out new files nobody added yet
            untracked = await git(grant.worktree, "ls-files", "--others", "--exclude-standard")
            shown["untracked"] = untracked.stdout.splitlines()[:MAX_STATUS_LINES]
        return shown

    async def git_commit(ctx: Context, message: str, item_id: int | None = None) -> dict[str, Any]:
        """Commit everything in your worktree (``git add -A`` then ``git commit``) on your item's branch."""
        grant, orch = hub.grant_of(ctx, item_id)
        if grant.role is Role.QA:
            raise ToolError("QA only reviews: a QA run must not commit. Report your verdict with report_qa_result.")
        if not message.strip():
            raise ToolError("message: a commit needs a message")
        base = orch.config.base_branch
        head = await git(grant.worktree, "symbolic-ref", "--quiet", "HEAD", check=False)
        if head.stdout.strip() == f"refs/heads/{base}":
            raise ToolError(f"your worktree is on the base branch {base!r}; gangline never commits there")
        await git(grant.worktree, "add", "-A")
        if (await git(grant.worktree, "diff", "--cached", "--quiet", check=False)).returncode == 0:
            raise ToolError("nothing to commit: the worktree has no changes")
        await git(grant.worktree, *await _identity(grant.worktree), "commit", "--quiet", "-m", message.strip())
        sha = (await git(grant.worktree, "rev-parse", "HEAD")).stdout.strip()
        files = await git(grant.worktree, "diff-tree", "--no-commit-id", "--name-only", "-r", "HEAD")
        return {"commit": sha, "files": files.stdout.splitlines()[:MAX_STATUS_LINES]}

    return [git_status, git_diff, git_commit]


def _report_tools(hub: Hub) -> list[Any]:
    async def report_qa_result(
        ctx: Context,
        verdict: Literal["pass", "fail"],
        criteria: list[CriterionResult],
        summary: str = "",
        item_id: int | None = None,
    ) -> dict[str, Any]:
        """QA runs only: your verdict on the item, one entry per acceptance criterion (1-based index).
        gangline takes it when your run ends, instead of your final message."""
        grant, orch = hub.grant_of(ctx, item_id)
        if grant.role is not Role.QA:
            raise MCPError(FORBIDDEN, f"report_qa_result is for QA runs; run {grant.run_id} is a {grant.role.value}")
        item = orch.store.get_item(grant.item_id)
        payload = QaVerdict.model_validate(
            {"verdict": verdict, "criteria": [c.model_dump() for c in criteria], "summary": summary}
        )
        orch.report_qa(
            grant.run_id, parse_qa_verdict(payload.model_dump_json(), len(item.criteria))
        )  # a final's checks
        said = summary[:NOTE_CHARS] or verdict
        orch.store.record_event("qa_reported", grant.actor, item_id=item.id, run_id=grant.run_id, reason=said,
                                data={"verdict": verdict})  # fmt: skip
        return {
            "accepted": True,
            "verdict": verdict,
            "next": "gangline applies this verdict when your run ends; finish now.",
        }

    async def report_merge_failure(ctx: Context, reason: str, item_id: int | None = None) -> dict[str, Any]:
        """Mergemaster runs only: say the merge cannot be resolved, and why; the item is then held for a person."""
        grant, orch = hub.grant_of(ctx, item_id)
        if grant.role is not Role.MERGEMASTER:
            raise MCPError(
                FORBIDDEN, f"report_merge_failure is for mergemaster runs; run {grant.run_id} is a {grant.role.value}"
            )
        if not reason.strip():
            raise ToolError("reason: say why the merge cannot be done")
        said = reason.strip()[:NOTE_CHARS]
        orch.report_merge_failure(grant.run_id, said)
        orch.store.record_event("merge_failure_reported", grant.actor, item_id=grant.item_id, run_id=grant.run_id,
                                reason=said)  # fmt: skip
        return {"accepted": True, "next": "gangline marks the merge as failed when your run ends; finish now."}

    async def submit_report(ctx: Context, report: str, item_id: int | None = None) -> dict[str, Any]:
        """A spike's coder only: your written report (findings, options, a recommendation); it is the spike's result,
        taken when your run ends instead of your final message. Sending it again replaces it."""
        grant, orch = hub.grant_of(ctx, item_id)
        item = orch.store.get_item(grant.item_id)
        if grant.role is not Role.CODER or item.kind is not Kind.SPIKE:
            raise MCPError(FORBIDDEN, f"submit_report is for a spike's coder; run {grant.run_id} is a "
                                      f"{grant.role.value} on a {item.kind.value}")  # fmt: skip
        if not report.strip():
            raise ToolError("report: write your findings; an empty report is none")
        orch.submit_report(item.id, report.strip(), grant.actor, grant.run_id)
        return {"accepted": True, "next": "gangline takes this report when your run ends; finish now."}

    return [report_qa_result, report_merge_failure, submit_report]


def _permission_tool(hub: Hub) -> Any:
    async def prompt_permission(
        ctx: Context, tool_name: str, input: dict[str, Any], tool_use_id: str | None = None
    ) -> str:
        """Claude Code's --permission-prompt-tool: decides one tool call. Returns the decision as JSON text."""
        grant = hub.asker_of(ctx)
        permissions = hub.state.permissions
        if permissions is None:
            raise ToolError("gangline is starting; try again in a moment")
        item_id = grant.item_id if isinstance(grant, Grant) else None
        answer = await permissions.ask(grant.run_id, item_id, grant.worktree, tool_name, input, tool_use_id)
        return answer.to_json()

    return prompt_permission


async def _identity(worktree: Path) -> tuple[str, ...]:
    """The repository's own author when it has one; gangline's otherwise, so a commit never fails for want of it.

    Signing is off: a pinentry nobody can see would wait forever.
    """
    email = await git(worktree, "config", "user.email", check=False)
    return ("-c", "commit.gpgsign=false") if email.stdout.strip() else GANGLINE_COMMITTER
