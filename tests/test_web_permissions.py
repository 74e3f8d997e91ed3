"""A permission request from the real Claude Code CLI, answered from the web UI; the agent goes on.

The CLI runs in ``--permission-mode default`` against the fake model API, so its Bash call is put
to gangline's permission tool over MCP, which waits for a person; the test is that person.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import expect

from browser_kit import page_at, shoot
from claude_cli import offline_env, require_claude
from fakeapi import FakeAnthropic, text_turn, tool_turn
from mcp_kit import served
from pipeline_kit import Project

pytestmark = [pytest.mark.browser, pytest.mark.real_cli]

COMMIT = "printf 'allowed\\n' > allowed.txt && git add allowed.txt && git commit -q -m 'Add allowed.txt'"


async def test_a_permission_request_answered_in_the_ui_lets_the_agent_continue(tmp_path: Path) -> None:
    project = Project(tmp_path)
    script = [tool_turn("Bash", {"command": COMMIT, "description": "Commit allowed.txt"}), text_turn("Committed.")]
    with FakeAnthropic(script) as api:
        project.add_agent(
            {
                "name": "claude-coder",
                "cli": "claude",
                "command": require_claude(),
                "model": "claude-sonnet-4-5",
                "permission_mode": "default",  # Bash is asked about
                "max_turns": 5,
                "env": offline_env(api.base_url, tmp_path / "home"),
            }
        )
        project.configure(qa_mode="server", gates=[("allowed", 'test "$(cat allowed.txt)" = allowed')])
        project.add("Needs a person's yes")
        async with served(project) as s, page_at(s.url) as page:
            request = page.locator('#permissions .request[data-tool="Bash"]')
            await expect(request).to_be_visible(timeout=60_000)
            await expect(request.locator(".input")).to_contain_text("printf 'allowed")
            await shoot(page, "permission-request")
            await page.goto(f"{s.url}/#/items/1")  # the request follows the person to another view
            await expect(request).to_be_visible()
            await request.get_by_role("button", name="Allow Bash for #1", exact=True).click()
            await expect(request).to_have_count(0)
            await expect(page.locator('.runs [data-run="1-coder-1"]')).to_contain_text("succeeded", timeout=60_000)
            await page.goto(f"{s.url}/#/")
            await expect(page.locator('.column[data-stage="done"] article.card[data-item="1"]')).to_be_visible()
    assert project.base_file("allowed.txt") == "allowed"
    answered = [e for e in project.store.events_after(0) if e.kind == "permission_answered"]
    assert [(e.actor, e.data["decision"]) for e in answered] == [("web", "allow")]
