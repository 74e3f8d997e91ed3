"""The real Claude Code CLI asking gangline's prompt_permission tool over MCP, against the scripted fake model API.

Each test runs one agent through AgentRuns.run, as the pipeline does, with the app (REST and MCP)
on a real uvicorn: the run gets its own token and MCP config, the CLI runs in
``--permission-mode default`` so Write, Bash and MCP tools are asked about, and gangline decides.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from gangline.core.events import Result, RunOutcome, SessionStarted, ToolResult, ToolUse
from gangline.core.profiles import AgentProfile, CliKind, PermissionMode
from gangline.pipeline.results import AgentResult
from kits.claude_cli import offline_env, require_claude
from kits.fakeapi import FakeAnthropic, Turn, text_turn, tool_turn
from kits.helpers import events_of
from kits.mcp_kit import Served, served
from kits.pipeline_kit import Project

pytestmark = pytest.mark.real_cli


def claude(api: FakeAnthropic, home: Path) -> AgentProfile:
    return AgentProfile(
        name="claude",
        cli=CliKind.CLAUDE,
        command=require_claude(),
        model="claude-sonnet-4-5",
        permission_mode=PermissionMode.DEFAULT,  # the CLI asks about Write, most Bash and MCP tools
        env=offline_env(api.base_url, home),
    )


def make_project(tmp_path: Path, **permissions: Any) -> Project:
    project = Project(tmp_path)
    project.agent("coder", [[{"hang": True}]])  # never started: the items are frozen
    project.configure(permissions=permissions) if permissions else project.configure()
    return project


async def run_claude(s: Served, project: Project, script: list[Turn], prompt: str) -> tuple[AgentResult, Path]:
    item = project.add("Permissions", frozen=True)
    worktree = await s.orch.worktrees.ensure(item.id, item.slug)
    with FakeAnthropic(script) as api:
        result = await s.orch.run_agent(item, claude(api, project.root.parent / "home"), prompt, worktree, None, 1)
    return result, worktree


def connected_to_gangline(result: AgentResult) -> bool:
    (session,) = events_of(result.summary, SessionStarted)
    return any(server.name == "gangline" and server.status == "connected" for server in session.mcp_servers)


def tool_result(result: AgentResult, name: str) -> ToolResult:
    (use,) = [u for u in events_of(result.summary, ToolUse) if u.name == name]
    (found,) = [r for r in events_of(result.summary, ToolResult) if r.tool_use_id == use.tool_use_id]
    return found


def kinds(project: Project) -> list[str]:
    return [e.kind for e in project.store.events_after(0) if e.kind.startswith(("permission", "note"))]


async def test_rules_allow_a_write_and_gangline_tools_without_asking_anyone(tmp_path: Path) -> None:
    project = make_project(tmp_path, allow=["Write"])
    script = [
        tool_turn("mcp__gangline__add_note", {"text": "starting"}),
        tool_turn("Write", {"file_path": "{cwd}/hello.txt", "content": "hello\n"}),
        text_turn("Done."),
    ]
    async with served(project) as s:
        result, worktree = await run_claude(s, project, script, "write hello.txt")
    assert result.summary.outcome is RunOutcome.SUCCEEDED, result.summary.reason
    assert connected_to_gangline(result)
    assert (worktree / "hello.txt").read_text() == "hello\n"
    assert not tool_result(result, "mcp__gangline__add_note").is_error
    assert kinds(project) == ["note"]  # the note arrived through MCP; nobody was asked anything


async def test_a_deny_rule_refuses_a_command_and_the_agent_carries_on(tmp_path: Path) -> None:
    project = make_project(tmp_path, deny=["Bash(rm:*)"])
    script = [
        tool_turn("Bash", {"command": "rm -f README.md", "description": "remove the readme"}),
        text_turn("I will carry on without deleting it."),
    ]
    async with served(project) as s:
        result, worktree = await run_claude(s, project, script, "tidy up")
    assert result.summary.outcome is RunOutcome.SUCCEEDED, result.summary.reason
    assert (worktree / "README.md").exists()
    refused = tool_result(result, "Bash")
    assert refused.is_error and "denied by the rule Bash(rm:*)" in refused.content
    (final,) = events_of(result.summary, Result)
    assert final.permission_denials == 1 and final.result == "I will carry on without deleting it."
    assert kinds(project) == ["permission_denied"]


async def test_a_person_answers_while_the_cli_waits_and_the_tool_runs_with_their_changed_input(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    script = [
        tool_turn("Write", {"file_path": "{cwd}/notes.txt", "content": "original\n"}),
        text_turn("Written."),
    ]
    async with served(project) as s, httpx.AsyncClient(base_url=s.url) as rest, asyncio.TaskGroup() as tg:
        running = tg.create_task(run_claude(s, project, script, "write notes.txt"))
        (pending,) = await s.permissions.wait_requested(60)  # the CLI is blocked in prompt_permission now
        assert pending.tool_name == "Write" and pending.input["content"] == "original\n"
        answer = {"decision": "allow", "updated_input": {"content": "changed by a person\n"}}
        assert (await rest.post(f"/api/permissions/{pending.id}", json=answer)).status_code == 200
        result, worktree = await running
    assert result.summary.outcome is RunOutcome.SUCCEEDED, result.summary.reason
    assert (worktree / "notes.txt").read_text() == "changed by a person\n"
    assert not tool_result(result, "Write").is_error
    assert kinds(project) == ["permission_requested", "permission_answered"]


async def test_unattended_denies_at_once_what_no_rule_allows_and_says_what_to_do(tmp_path: Path) -> None:
    project = make_project(tmp_path, unattended=True)
    script = [tool_turn("Write", {"file_path": "{cwd}/out.txt", "content": "x\n"}), text_turn("Stopping here.")]
    async with served(project) as s:
        result, worktree = await run_claude(s, project, script, "write out.txt")
    assert result.summary.outcome is RunOutcome.SUCCEEDED, result.summary.reason
    assert not (worktree / "out.txt").exists()
    refused = tool_result(result, "Write")
    assert refused.is_error and "running unattended and no rule allows Write" in refused.content
    assert s.permissions.pending() == [] and kinds(project) == ["permission_denied"]
