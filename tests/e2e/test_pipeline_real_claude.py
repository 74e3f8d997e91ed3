"""One item from backlog to done with the real Claude Code CLI as the coder, against the fake model API."""

from __future__ import annotations

from pathlib import Path

import pytest

from gangline.core.events import RunOutcome
from gangline.core.stages import Stage
from kits.claude_cli import offline_env, require_claude
from kits.fakeapi import FakeAnthropic, text_turn, tool_turn
from kits.pipeline_kit import Project

pytestmark = pytest.mark.real_cli

COMMIT = "printf 'hello from claude\\n' > hello.txt && git add hello.txt && git commit -q -m 'Add hello.txt'"


async def test_the_real_cli_codes_an_item_that_gates_qa_and_merge_take_to_done(tmp_path: Path) -> None:
    project = Project(tmp_path)
    script = [tool_turn("Bash", {"command": COMMIT, "description": "Write and commit hello.txt"}), text_turn("Done.")]
    with FakeAnthropic(script) as api:
        project.add_agent(
            {
                "name": "claude-coder",
                "cli": "claude",
                "command": require_claude(),
                "model": "claude-sonnet-4-5",
                "allowed_tools": ["Bash"],
                "max_turns": 5,
                "max_budget_usd": 1.0,
                "env": offline_env(api.base_url, tmp_path / "home"),
            }
        )
        project.configure(qa_mode="server", gates=[("hello", 'test "$(cat hello.txt)" = "hello from claude"')])
        item = project.add("Say hello", criteria=[{"text": "hello.txt says hello"}])
        await project.run_until_idle(timeout_s=120)
        first_prompt = str(api.main_requests()[0]["body"]["messages"])
    done = project.item(item.id)
    assert done.stage is Stage.DONE, done.state
    assert project.base_file("hello.txt") == "hello from claude"
    assert project.base_log() == ["Say hello (#1)", "initial"]
    [run] = project.store.runs(item.id)
    assert run.outcome is RunOutcome.SUCCEEDED and run.session_id and run.cost_usd > 0
    assert "Say hello" in first_prompt and "hello.txt says hello" in first_prompt
    assert [g.exit_code for g in project.store.gate_results(item.id)] == [0, 0]  # in the worktree, then merged
