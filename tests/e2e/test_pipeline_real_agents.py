"""One item from backlog to done with the real Codex CLI, then the real Gemini CLI, as the coder, each against
the fake of its model API: the pipeline, the ledger and the board do not care which agent ran."""

from __future__ import annotations

from pathlib import Path

import pytest

from gangline.agents.runlog import replay
from gangline.core.events import CommandExecution, RunOutcome
from gangline.core.stages import Stage
from kits.agent_clis import (
    CODEX_KEY_VAR,
    CODEX_MODEL,
    GEMINI_MODEL,
    codex_env,
    gemini_env,
    require_codex,
    require_gemini,
)
from kits.fake_gemini import FakeGemini
from kits.fake_openai import FakeResponses, custom_tool_turn, text_turn, tool_turn
from kits.pipeline_kit import Project

pytestmark = pytest.mark.real_cli

COMMIT = "git add hello.txt && git commit -q -m 'Add hello.txt'"


def escape_then_commit(project: Project) -> str:
    """A write outside the worktree (refused by the sandbox; the command goes on), then the commit."""
    return f"echo evil > {project.root}/EVIL.txt; {COMMIT}"


GATE = ("hello", 'test "$(cat hello.txt)" = "hello from the agent"')
PATCH = "*** Begin Patch\n*** Add File: hello.txt\n+hello from the agent\n*** End Patch\n"


def assert_done_with_one_commit(project: Project, item_id: int, profile: str) -> None:
    done = project.item(item_id)
    assert done.stage is Stage.DONE, project.store.events_after(0)
    assert project.base_log() == ["Say hello (#1)", "initial"]
    assert project.base_file("hello.txt") == "hello from the agent"
    [run] = project.store.runs(item_id)
    assert (run.profile, run.outcome) == (profile, RunOutcome.SUCCEEDED)
    commands = [r.event for r in replay(Path(run.log_path)) if isinstance(r.event, CommandExecution)]
    assert [c.status for c in commands] == ["completed"] and COMMIT in commands[0].command
    assert "Read-only file system" in Path(run.log_path).read_text()  # the write outside was refused...
    assert not (project.root / "EVIL.txt").exists()  # ...and left nothing; the commit inside landed


async def test_codex_codes_an_item_that_gates_and_merge_take_to_done_and_its_cost_reaches_the_ledger(
    tmp_path: Path,
) -> None:
    project = Project(tmp_path)
    script = [
        custom_tool_turn("apply_patch", PATCH),
        tool_turn("exec_command", {"cmd": escape_then_commit(project)}),
        text_turn("Done."),
    ]
    with FakeResponses(script) as api:
        project.add_agent(
            {
                "name": "codex-coder",
                "cli": "codex",
                "command": require_codex(),
                "model": CODEX_MODEL,
                "max_budget_usd": 1.0,
                "provider": {"base_url": f"{api.base_url}/v1", "key_env": CODEX_KEY_VAR, "name": "fake"},
                "extra_args": ["-c", "model_providers.fake.request_max_retries=0"],
                "env": codex_env(tmp_path / "home"),
            }
        )
        tables = f'[price."{CODEX_MODEL}"]\ninput = 2.0\noutput = 10.0\ncache_read = 0.5\n'
        project.configure(qa_mode="server", gates=[GATE], tables=tables)
        item = project.add("Say hello", criteria=[{"text": "hello.txt says hello"}])
        await project.run_until_idle(timeout_s=120)
    assert_done_with_one_commit(project, item.id, "codex-coder")
    [run] = project.store.runs(item.id)
    # Three requests of 1000 input and 20 output tokens each (Turn's defaults), at $2 and $10 per million.
    assert run.input_tokens == 3000 and run.cost_usd == pytest.approx((3000 * 2.0 + 60 * 10.0) / 1e6)
    assert [r.cost_usd for r in project.store.ledger("item")] == [pytest.approx(run.cost_usd)]


async def test_gemini_codes_an_item_that_gates_and_merge_take_to_done(tmp_path: Path) -> None:
    project = Project(tmp_path)
    write = {"file_path": "{cwd}/hello.txt", "content": "hello from the agent\n"}
    script = [
        tool_turn("write_file", write),
        tool_turn("run_shell_command", {"command": escape_then_commit(project), "description": "commit"}),
        text_turn("Done."),
    ]
    with FakeGemini(script) as api:
        project.add_agent(
            {
                "name": "gemini-coder",
                "cli": "gemini",
                "command": require_gemini(),
                "model": GEMINI_MODEL,
                "env": gemini_env(api.base_url, tmp_path / "home", max_attempts=1),
            }
        )
        project.configure(qa_mode="server", gates=[GATE])
        item = project.add("Say hello", criteria=[{"text": "hello.txt says hello"}])
        await project.run_until_idle(timeout_s=120)
    assert_done_with_one_commit(project, item.id, "gemini-coder")
