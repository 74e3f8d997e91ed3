"""gangline's MCP endpoint through the MCP SDK's own client over streamable HTTP, against the real app on uvicorn."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import httpx
import pytest
from mcp.shared.exceptions import MCPError

from gangline.agents.claude import ClaudeAdapter, with_mcp
from gangline.core.events import RunOutcome
from gangline.core.items import Criterion, Item, ItemDraft
from gangline.core.profiles import AgentProfile, CliKind, Role
from gangline.core.stages import Hold, Stage
from gangline.pipeline.grants import CONFIG_NAME, PERMISSION_TOOL, write_mcp_config
from kits.helpers import git
from kits.mcp_kit import TOKEN, Served, mcp_client, served, text_of
from kits.pipeline_kit import Project, commit_file

CRITERIA = ["it works", "it is tested"]


@pytest.fixture
def project(tmp_path: Path) -> Project:
    project = Project(tmp_path)
    # Agents that never finish: items the orchestrator starts stay in coding until a test moves them.
    project.agent("coder", [[{"say": "working"}, {"hang": True}]])
    project.agent("qa", [[{"hang": True}]], role="qa")
    project.configure(gates=[("where", "pwd"), ("ready", "test -f ready.txt")], max_retries=0)
    return project


def frozen_item(project: Project, title: str) -> Item:
    """An item the orchestrator leaves alone, so a test can hand its grant to a client."""
    return project.add(title, criteria=CRITERIA, frozen=True)


def refused_by_server(group: BaseException) -> bool:
    """Whether the SDK client failed because the server refused the HTTP request (our 401)."""
    if isinstance(group, BaseExceptionGroup):
        return any(refused_by_server(inner) for inner in group.exceptions)
    return isinstance(group, MCPError) and group.message == "Server returned an error response"


async def worktree_of(s: Served, item: Item) -> Path:
    return await s.orch.worktrees.ensure(item.id, item.slug)


# --- each run gets its own token ------------------------------------------------------------------


async def test_a_run_gets_its_own_token_in_a_file_git_ignores_and_loses_it_when_it_ends(
    project: Project, tmp_path: Path
) -> None:
    item = frozen_item(project, "Peek")
    seen = project.scenarios / "seen"  # the kit's sandbox shows its scenarios' folder writable
    seen.mkdir()
    look = (
        f"cp {CONFIG_NAME} {seen}/config.json; stat -c %a {CONFIG_NAME} > {seen}/mode; "
        f"git status --porcelain > {seen}/status"
    )
    scenario = tmp_path / "peek.json"
    scenario.write_text(json.dumps({"attempts": [[{"run": look}]]}))
    profile = AgentProfile(name="peek", cli=CliKind.FAKE, extra_args=("--scenario", str(scenario)))
    async with served(project) as s:
        worktree = await worktree_of(s, item)
        result = await s.orch.run_agent(item, profile, "look around", worktree, None, 1)
        assert result.summary.outcome is RunOutcome.SUCCEEDED, result.summary.reason
        server = json.loads((seen / "config.json").read_text())["mcpServers"]["gangline"]
        assert (server["type"], server["url"]) == ("http", s.mcp_url)
        token = server["headers"]["Authorization"].removeprefix("Bearer ")
        assert (seen / "mode").read_text().strip() == "600"  # it holds a secret
        assert (seen / "status").read_text() == ""  # git does not see it: the worktree counts as clean
        assert not (worktree / CONFIG_NAME).exists() and s.orch.grants.live() == []
        async with httpx.AsyncClient() as http:
            body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
            after = await http.post(s.mcp_url, json=body, headers={"Authorization": f"Bearer {token}"})
            assert after.status_code == 401  # revoked with the run
    exclude = Path(git(project.root, "rev-parse", "--path-format=absolute", "--git-common-dir")) / "info" / "exclude"
    assert exclude.read_text().count(f"/{CONFIG_NAME}") == 1


def test_a_claude_run_is_launched_with_the_mcp_config_and_gangline_permission_tool() -> None:
    claude = AgentProfile(name="c", command=sys.executable, extra_args=("--verbose-thing",))
    argv = ClaudeAdapter().command(with_mcp(claude, Path("/w/.gangline-mcp.json"), PERMISSION_TOOL), "do it", None)
    assert argv[argv.index("--permission-prompt-tool") + 1] == "mcp__gangline__prompt_permission"
    at = argv.index("--mcp-config")
    assert argv[at:] == ["--mcp-config", "/w/.gangline-mcp.json", "--strict-mcp-config", "--verbose-thing"]
    own = claude.model_copy(update={"permission_prompt_tool": "mcp__mine__approve"})
    assert with_mcp(own, Path("/w/x"), PERMISSION_TOOL).permission_prompt_tool == "mcp__mine__approve"
    fake = AgentProfile(name="f", cli=CliKind.FAKE)
    assert with_mcp(fake, Path("/w/x"), PERMISSION_TOOL) == fake  # the fake CLI speaks no MCP


# --- a run's token reaches its own item and nothing else ---------------------------------------


async def test_a_run_token_reads_and_updates_only_its_own_item(project: Project) -> None:
    mine, other = frozen_item(project, "Mine"), frozen_item(project, "Other")
    async with served(project) as s:
        token = s.grant(mine, await worktree_of(s, mine))
        async with mcp_client(s.mcp_url, token) as client:
            names = {tool.name for tool in (await client.list_tools()).tools}
            assert {"status", "check_criterion", "git_commit", "prompt_permission"} <= names
            assert not names & {"add_item", "list_items", "answer_permission"}  # people's tools are not even listed
            status = json.loads(text_of(await client.call_tool("status", {})))
            assert status["item"]["id"] == mine.id and status["run"] == {"id": f"{mine.id}-coder-9", "role": "coder"}
            assert [c["text"] for c in status["criteria"]] == CRITERIA
            todos = json.loads(text_of(await client.call_tool("check_criterion", {"index": 2})))
            assert [c["checked"] for c in todos["criteria"]] == [False, True]
            await client.call_tool("add_note", {"text": "halfway there"})
            with pytest.raises(MCPError, match=f"item {other.id} is not yours"):
                await client.call_tool("check_criterion", {"index": 1, "item_id": other.id})
            with pytest.raises(MCPError, match="not yours"):
                await client.call_tool("status", {"item_id": other.id})
            assert json.loads(text_of(await client.call_tool("status", {"item_id": mine.id})))["item"]["id"] == mine.id
    assert [c.checked for c in project.item(other.id).criteria] == [False, False]
    notes = [e for e in project.store.events_after(0) if e.kind == "note"]
    assert [(n.item_id, n.actor, n.reason) for n in notes] == [(mine.id, f"agent:{mine.id}-coder-9", "halfway there")]


async def test_an_unknown_or_revoked_token_is_refused_before_any_tool(project: Project) -> None:
    item = frozen_item(project, "Guarded")
    async with served(project) as s:
        async with httpx.AsyncClient() as http:
            body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
            refused = await http.post(s.mcp_url, json=body, headers={"Authorization": "Bearer not-a-token"})
            assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"
        with pytest.raises(ExceptionGroup) as failed:  # the SDK client's task groups wrap its error
            async with mcp_client(s.mcp_url, "not-a-token"):
                pass
        assert refused_by_server(failed.value)
        token = s.grant(item, await worktree_of(s, item), run_id="1-coder-7")
        with pytest.raises(ExceptionGroup) as failed:
            async with mcp_client(s.mcp_url, token) as client:
                await client.call_tool("status", {})
                s.orch.grants.revoke("1-coder-7")  # the run ended
                await client.call_tool("status", {})
        assert refused_by_server(failed.value)


async def test_people_tools_need_the_server_token_and_agents_tools_refuse_it(project: Project) -> None:
    mine = frozen_item(project, "Mine")
    async with served(project, token=TOKEN) as s:
        run_token = s.grant(mine, await worktree_of(s, mine))
        async with mcp_client(s.mcp_url, run_token) as agent:  # a run token still works behind a server token
            assert json.loads(text_of(await agent.call_tool("status", {})))["item"]["id"] == mine.id
            refused = await agent.call_tool("add_item", {"title": "Sneaky"})
            assert refused.is_error and "Unknown tool: add_item" in text_of(refused)
        async with mcp_client(s.mcp_url, TOKEN) as person:
            names = {tool.name for tool in (await person.list_tools()).tools}
            assert names == {"list_items", "show_item", "add_item", "edit_item", "delete_item", "act_on_item"} | {
                "start_item", "stop_item", "list_permissions", "answer_permission", "pipeline_status", "costs",
                "set_timer", "cancel_timer", "onboarding", "add_gate", "say_to_agent", "list_messages", "list_runs",
                "show_run", "run_output", "wait_for_run", "stop_run", "item_diff", "pipeline_events", "agent_profiles",
                "list_nodes", "node_token", "drain_node", "server_log", "top", "item_overview",
            }  # fmt: skip
            assert (await person.call_tool("status", {})).is_error  # the server token is no run token
            added = json.loads(
                text_of(await person.call_tool("add_item", {"title": "Via MCP", "depends_on": [mine.id]}))
            )
            assert added["stage"] == "backlog"  # waits for the frozen item it depends on
            started = json.loads(text_of(await person.call_tool("start_item", {"item_id": added["id"]})))
            assert started["stage"] == "coding"
            stopped = json.loads(
                text_of(await person.call_tool("stop_item", {"item_id": added["id"], "reason": "lunch"}))
            )
            assert (stopped["hold"], stopped["hold_reason"]) == ("blocked", "stopped by mcp: lunch")
            moved = json.loads(
                text_of(await person.call_tool("act_on_item", {"item_id": added["id"], "action": "demote"}))
            )
            assert (moved["stage"], moved["hold"]) == ("backlog", None)
            bad = await person.call_tool("act_on_item", {"item_id": added["id"], "action": "merged"})
            refusal = json.loads(text_of(bad))["error"]  # the object REST answers with
            assert bad.is_error and (refusal["code"], refusal["field"]) == ("invalid", "action")
            listed = json.loads(text_of(await person.call_tool("list_items", {})))
            assert [i["title"] for i in listed["items"]] == ["Mine", "Via MCP"]
        with pytest.raises(ExceptionGroup) as failed:  # no token at all behind a server token
            async with mcp_client(s.mcp_url, None):
                pass
        assert refused_by_server(failed.value)
    created = [e for e in project.store.events_after(0) if e.kind == "created" and e.reason == "Via MCP"]
    assert [e.actor for e in created] == ["mcp"]
    assert project.item(added["id"]).stage is Stage.BACKLOG


async def test_a_chat_agents_token_reaches_the_peoples_tools_as_the_agent_and_never_answers_a_question(
    project: Project, tmp_path: Path
) -> None:
    mine = frozen_item(project, "Mine")
    home = tmp_path / "chat-home"
    home.mkdir()
    async with served(project, token=TOKEN) as s:
        chat_token = s.orch.grants.issue("chat-1", None, Role.CHAT, home)
        async with mcp_client(s.mcp_url, chat_token) as agent:
            names = {tool.name for tool in (await agent.list_tools()).tools}
            assert {"list_items", "add_item", "prompt_permission"} <= names and "status" not in names
            listed = json.loads(text_of(await agent.call_tool("list_items", {})))
            assert [i["title"] for i in listed["items"]] == ["Mine"]
            edited = json.loads(text_of(await agent.call_tool("edit_item", {"item_id": mine.id, "priority": 3})))
            assert edited["priority"] == 3
            with pytest.raises(MCPError, match="a person's to answer, not the chat agent's"):
                await agent.call_tool("answer_permission", {"request_id": "0" * 16, "decision": "allow"})
            s.orch.grants.revoke("chat-1")  # its run ended: the token is refused before any tool (401)
            with pytest.raises(MCPError) as refused:
                await agent.call_tool("list_items", {})
            assert refused_by_server(refused.value)
    edits = [e for e in project.store.events_after(0) if e.kind == "edited"]
    assert [e.actor for e in edits] == ["agent:chat-1"]


# --- tools that act in the worktree -------------------------------------------------------------


async def test_run_gates_runs_the_projects_gates_server_side_in_the_agents_worktree(project: Project) -> None:
    item = frozen_item(project, "Gated")
    async with served(project) as s:
        worktree = await worktree_of(s, item)
        async with mcp_client(s.mcp_url, s.grant(item, worktree)) as client:
            failed = json.loads(text_of(await client.call_tool("run_gates", {})))
            assert not failed["passed"] and "Gate 'ready' failed with exit code 1" in failed["summary"]
            (worktree / "ready.txt").write_text("yes\n")
            passed = json.loads(text_of(await client.call_tool("run_gates", {})))
            assert passed == {
                "passed": True,
                "summary": "All 2 gate(s) passed: where, ready.",
                "gates": [
                    {"name": "where", "passed": True, "exit_code": 0, "timed_out": False},
                    {"name": "ready", "passed": True, "exit_code": 0, "timed_out": False},
                ],
            }
            last = json.loads(text_of(await client.call_tool("get_gate_result", {})))["gates"]
            assert [(g["name"], g["passed"], g["context"]) for g in last] == [
                ("where", True, "agent"),
                ("ready", True, "agent"),
            ]
            assert last[0]["output"].strip() == str(worktree)  # it ran in the agent's worktree
    rows = project.store.gate_results(item.id)
    assert len(rows) == 4 and {r.run_id for r in rows} == {f"{item.id}-coder-9"}


async def test_git_commit_commits_in_the_agents_worktree_on_its_branch_only(project: Project) -> None:
    item = frozen_item(project, "Commit me")
    base_before = git(project.root, "rev-parse", "main")
    async with served(project) as s:
        worktree = await worktree_of(s, item)
        token = s.grant(item, worktree)
        await write_mcp_config(worktree, s.mcp_url, token)  # as a run has it: it must never be committed
        (worktree / "feature.txt").write_text("new\n")
        async with mcp_client(s.mcp_url, token) as client:
            status = json.loads(text_of(await client.call_tool("git_status", {})))
            assert status["changes"] == ["?? feature.txt"] and status["commits_ahead"] == 0
            diff = json.loads(text_of(await client.call_tool("git_diff", {})))
            assert diff["untracked"] == ["feature.txt"]
            done = json.loads(text_of(await client.call_tool("git_commit", {"message": "Add the feature"})))
            assert done["files"] == ["feature.txt"]
            empty = await client.call_tool("git_commit", {"message": "again"})
            assert empty.is_error and "nothing to commit" in text_of(empty)
            against = json.loads(text_of(await client.call_tool("git_diff", {"against_base": True})))
            assert "+new" in against["diff"]
    branch = f"gangline/{item.id}-{item.slug}"
    assert git(project.root, "rev-parse", branch) == done["commit"]
    assert git(project.root, "log", "-1", "--format=%s", branch) == "Add the feature"
    assert git(project.root, "rev-parse", "main") == base_before  # the base never moved
    assert not (project.root / "feature.txt").exists()
    assert CONFIG_NAME not in git(project.root, "show", "--name-only", "--format=", branch)
    assert (worktree / CONFIG_NAME).exists()  # still there, just invisible to git


async def test_git_commit_is_refused_on_the_base_branch_and_for_qa(project: Project) -> None:
    item = frozen_item(project, "Careful")
    async with served(project) as s:
        (project.root / "stray.txt").write_text("stray\n")
        on_base = s.grant(item, project.root, run_id="1-coder-5")  # a worktree that is the person's main checkout
        async with mcp_client(s.mcp_url, on_base) as client:
            refused = await client.call_tool("git_commit", {"message": "onto main"})
            assert refused.is_error and "on the base branch 'main'" in text_of(refused)
        qa = s.grant(item, await worktree_of(s, item), Role.QA)
        async with mcp_client(s.mcp_url, qa) as client:
            refused = await client.call_tool("git_commit", {"message": "qa fixes"})
            assert refused.is_error and "QA only reviews" in text_of(refused)
    assert git(project.root, "status", "--porcelain") == "?? stray.txt"


# --- reports ---------------------------------------------------------------------------------------


async def test_report_qa_result_is_refused_for_a_coder_and_kept_for_the_qa_run(project: Project) -> None:
    item = frozen_item(project, "Review me")
    async with served(project) as s:
        worktree = await worktree_of(s, item)
        verdict = {"verdict": "pass", "criteria": [{"index": 1, "passed": True}, {"index": 2, "passed": True}]}
        async with mcp_client(s.mcp_url, s.grant(item, worktree)) as coder:
            with pytest.raises(MCPError, match="report_qa_result is for QA runs"):
                await coder.call_tool("report_qa_result", verdict)
        async with mcp_client(s.mcp_url, s.grant(item, worktree, Role.QA)) as qa:
            wrong = await qa.call_tool("report_qa_result", {**verdict, "criteria": [{"index": 3, "passed": True}]})
            assert wrong.is_error and "criterion 3 does not exist" in text_of(wrong)
            contradicts = {"verdict": "pass", "criteria": [{"index": 1, "passed": False, "note": "broken"}]}
            assert (await qa.call_tool("report_qa_result", contradicts)).is_error
            assert not (await qa.call_tool("report_qa_result", {**verdict, "summary": "fine"})).is_error
            with pytest.raises(MCPError, match="report_merge_failure is for mergemaster runs"):
                await qa.call_tool("report_merge_failure", {"reason": "no"})
        kept = s.orch.qa_report(f"{item.id}-qa-9")
        assert kept.verdict == "pass" and kept.summary == "fine" and [c.index for c in kept.criteria] == [1, 2]


async def test_the_qa_job_takes_the_verdict_reported_through_mcp_instead_of_the_final_message(tmp_path: Path) -> None:
    project = Project(tmp_path)
    go = tmp_path / "go"
    project.agent("coder", [commit_file("feature.txt", "done\n")])
    # The QA agent waits while the test reports its verdict with its token, then ends in prose.
    project.agent("qa", [[{"wait_for_file": str(go), "timeout_s": 60}, {"say": "Looks fine to me."}]], role="qa")
    project.configure(qa_mode="agent", max_retries=0)
    async with served(project) as s:
        started: asyncio.Queue[str] = asyncio.Queue()
        s.orch.on_run_started(started.put_nowait)
        item = s.orch.add_item(ItemDraft(title="Reviewed", criteria=[Criterion(text="it works")]), "ann")
        async with asyncio.timeout(60):
            while "-qa-" not in (run_id := await started.get()):
                pass
        worktree = await worktree_of(s, item)
        config = json.loads((worktree / CONFIG_NAME).read_text())["mcpServers"]["gangline"]
        token = config["headers"]["Authorization"].removeprefix("Bearer ")
        verdict = {"verdict": "pass", "criteria": [{"index": 1, "passed": True}], "summary": "checked through MCP"}
        async with mcp_client(s.mcp_url, token) as qa:
            assert not (await qa.call_tool("report_qa_result", verdict)).is_error
        go.touch()
        seen = -1
        async with asyncio.timeout(60):
            while project.stage(item.id) is not Stage.DONE:
                seen = await s.orch.wait_changed(seen, 60)
    passed = [e for e in project.store.events_after(0) if e.trigger == "qa_passed"]
    assert [(e.actor, e.run_id, e.reason) for e in passed] == [("qa:qa", run_id, "checked through MCP")]
    assert project.item(item.id).criteria[0].checked


async def test_a_merge_failure_reported_through_mcp_holds_the_item_without_another_attempt(tmp_path: Path) -> None:
    project = Project(tmp_path)
    go = tmp_path / "go"
    project.agent("coder", [commit_file("shared.txt", "from item {item_id}\n")])
    project.agent("merger", [[{"wait_for_file": str(go), "timeout_s": 60}]], role="mergemaster")
    project.configure(concurrency={"coder": 2}, max_retries=3)
    async with served(project) as s:
        started: asyncio.Queue[str] = asyncio.Queue()
        s.orch.on_run_started(started.put_nowait)
        a, b = (s.orch.add_item(ItemDraft(title=title), "ann") for title in ("First", "Second"))
        async with asyncio.timeout(60):
            while "-mergemaster-" not in (run_id := await started.get()):
                pass
        config = json.loads((project.paths.merge_dir / CONFIG_NAME).read_text())["mcpServers"]["gangline"]
        token = config["headers"]["Authorization"].removeprefix("Bearer ")
        async with mcp_client(s.mcp_url, token) as merger:
            status = json.loads(text_of(await merger.call_tool("status", {})))
            assert status["run"]["role"] == "mergemaster" and status["worktree"] == str(project.paths.merge_dir)
            reason = {"reason": "both sides rewrote shared.txt; a person must choose"}
            assert not (await merger.call_tool("report_merge_failure", reason)).is_error
        go.touch()
        loser = int(run_id.split("-")[0])
        seen = -1
        async with asyncio.timeout(60):
            while project.item(loser).state.hold is not Hold.MERGE_FAILURE:
                seen = await s.orch.wait_changed(seen, 60)
    held = project.item(loser)
    assert held.state.hold_reason == "the mergemaster gave up: both sides rewrote shared.txt; a person must choose"
    assert held.merge_attempts == 1  # no second attempt after the report
    assert {project.stage(a.id), project.stage(b.id)} == {Stage.DONE, Stage.MERGE}


async def test_create_item_adds_a_follow_up_in_the_agents_name(project: Project) -> None:
    item = frozen_item(project, "Parent")
    async with served(project) as s, mcp_client(s.mcp_url, s.grant(item, await worktree_of(s, item))) as client:
        made = json.loads(text_of(await client.call_tool("create_item", {"title": "Follow-up", "criteria": ["x"]})))
        invalid = await client.call_tool("create_item", {"title": ""})
        assert invalid.is_error and "title" in text_of(invalid)
    created = [e for e in project.store.events_after(0) if e.kind == "created" and e.item_id == made["id"]]
    assert [e.actor for e in created] == [f"agent:{item.id}-coder-9"]


# --- permission requests over REST and MCP -----------------------------------------------------


async def test_a_question_is_listed_over_rest_and_answered_there_while_the_tool_call_waits(project: Project) -> None:
    item = frozen_item(project, "Ask")
    async with served(project, token=TOKEN) as s:
        headers = {"Authorization": f"Bearer {TOKEN}", "X-Gangline-Actor": "ann"}
        async with (
            mcp_client(s.mcp_url, s.grant(item, await worktree_of(s, item))) as agent,
            httpx.AsyncClient(base_url=s.url, headers=headers) as rest,
        ):
            ask = {"tool_name": "Bash", "input": {"command": "make deploy"}, "tool_use_id": "toolu_1"}
            async with asyncio.TaskGroup() as tg:
                waiting = tg.create_task(agent.call_tool("prompt_permission", ask))
                (pending,) = await s.permissions.wait_requested(30)
                listed = (await rest.get("/api/permissions")).json()
                assert [(p["id"], p["tool_name"], p["input"]) for p in listed] == [
                    (pending.id, "Bash", {"command": "make deploy"})
                ]
                bad = await rest.post(f"/api/permissions/{pending.id}", json={"decision": "deny", "updated_input": {}})
                assert bad.status_code == 422
                answered = await rest.post(
                    f"/api/permissions/{pending.id}",
                    json={"decision": "always_allow", "updated_input": {"command": "make deploy-staging"}},
                )
                assert answered.status_code == 200 and answered.json()["rule"] == "Bash(make deploy:*)"
                decided = json.loads(text_of(await waiting))
            assert decided == {"behavior": "allow", "updatedInput": {"command": "make deploy-staging"}}
            assert (await rest.post(f"/api/permissions/{pending.id}", json={"decision": "allow"})).status_code == 404
            again = json.loads(
                text_of(await agent.call_tool("prompt_permission", {**ask, "input": {"command": "make deploy"}}))
            )
            assert again["behavior"] == "allow"  # the saved rule answers now, nobody is asked
    kinds = [(e.kind, e.actor) for e in project.store.events_after(0) if e.kind.startswith("permission")]
    assert kinds == [
        ("permission_requested", f"agent:{item.id}-coder-9"),
        ("permission_rule_added", "ann"),
        ("permission_answered", "ann"),
    ]


async def test_people_answer_permissions_through_their_own_mcp_tools(project: Project) -> None:
    item = frozen_item(project, "Ask again")
    async with (
        served(project) as s,
        mcp_client(s.mcp_url, s.grant(item, await worktree_of(s, item))) as agent,
        mcp_client(s.mcp_url, None) as person,  # no server token: loopback is a person
    ):
        ask = {"tool_name": "Write", "input": {"file_path": "/etc/passwd", "content": "x"}}
        async with asyncio.TaskGroup() as tg:
            waiting = tg.create_task(agent.call_tool("prompt_permission", ask))
            await s.permissions.wait_requested(30)
            (pending,) = json.loads(text_of(await person.call_tool("list_permissions", {})))["requests"]
            answer = {"request_id": pending["id"], "decision": "deny", "message": "not that file"}
            assert not (await person.call_tool("answer_permission", answer)).is_error
            assert json.loads(text_of(await waiting)) == {"behavior": "deny", "message": "not that file"}
    assert project.item(item.id).state.hold is not Hold.BLOCKED


async def test_a_spikes_coder_submits_its_report_through_mcp_and_it_is_the_result(tmp_path: Path) -> None:
    project = Project(tmp_path)
    go = tmp_path / "go"
    project.agent("coder", [[{"wait_for_file": str(go), "timeout_s": 60}, {"say": "Report sent."}]])
    project.configure()
    async with served(project) as s:
        started: asyncio.Queue[str] = asyncio.Queue()
        s.orch.on_run_started(started.put_nowait)
        spike = s.orch.add_item(ItemDraft(title="Why slow", kind="spike"), "ann")
        async with asyncio.timeout(60):
            await started.get()
        worktree = project.paths.worktrees_dir / f"{spike.id}-why-slow"
        config = json.loads((worktree / CONFIG_NAME).read_text())["mcpServers"]["gangline"]
        token = config["headers"]["Authorization"].removeprefix("Bearer ")
        async with mcp_client(s.mcp_url, token) as coder:
            assert (await coder.call_tool("submit_report", {"report": "  "})).is_error
            said = await coder.call_tool("submit_report", {"report": "The parser is slow; cache it."})
            assert not said.is_error, text_of(said)
        go.touch()
        seen = -1
        async with asyncio.timeout(60):
            while project.item(spike.id).state.hold is not Hold.REVIEW_HOLD:
                seen = await s.orch.wait_changed(seen, 60)
    # The tool's report is the result, not the final message ("Report sent.").
    assert project.item(spike.id).report == "The parser is slow; cache it."
    story = project.add("A story")
    async with served(project) as again, mcp_client(again.mcp_url, again.grant(story, project.root)) as coder:
        with pytest.raises(MCPError, match=r"submit_report is for a spike's coder; run .* is a coder on a story"):
            await coder.call_tool("submit_report", {"report": "x"})
