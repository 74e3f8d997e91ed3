"""The web UI while the real Claude Code CLI works against the fake model API.

A permission request: the CLI runs in ``--permission-mode default``, so its Bash call is put to
gangline's permission tool over MCP, which waits for a person; the test is that person. A
throttle: the API answers 429 with ``retry-after`` and the CLI retries; the card and the banner
say so while it waits, and the card goes back to running when the model answers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import expect

from kits.browser_kit import page_at, shoot
from kits.claude_cli import offline_env, require_claude
from kits.fakeapi import FakeAnthropic, http_error, text_turn, tool_turn
from kits.mcp_kit import served
from kits.pipeline_kit import Project

pytestmark = [pytest.mark.browser, pytest.mark.real_cli]

COMMIT = "printf 'allowed\\n' > allowed.txt && git add allowed.txt && git commit -q -m 'Add allowed.txt'"


def claude_coder(project: Project, api: FakeAnthropic, home: Path, **fields: Any) -> None:
    project.add_agent(
        {
            "name": "claude-coder",
            "cli": "claude",
            "command": require_claude(),
            "model": "claude-sonnet-4-5",
            "max_turns": 5,
            "env": offline_env(api.base_url, home),
            **fields,
        }
    )


async def test_a_permission_request_answered_in_the_ui_lets_the_agent_continue(tmp_path: Path) -> None:
    project = Project(tmp_path)
    script = [tool_turn("Bash", {"command": COMMIT, "description": "Commit allowed.txt"}), text_turn("Committed.")]
    with FakeAnthropic(script) as api:
        claude_coder(project, api, tmp_path / "home", permission_mode="default")  # Bash is asked about
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


async def test_an_agent_retrying_a_429_shows_as_throttled_on_its_card_and_in_the_banner(tmp_path: Path) -> None:
    project = Project(tmp_path)
    throttled = [http_error(429, headers={"retry-after": "2"})] * 2  # about four seconds of retrying
    script = [tool_turn("Bash", {"command": COMMIT}, errors=throttled), text_turn("Committed.")]
    with FakeAnthropic(script) as api:
        claude_coder(project, api, tmp_path / "home", allowed_tools=["Bash"])
        project.configure(qa_mode="server")
        project.add("Meets a rate limit")
        async with served(project) as s, page_at(s.url) as page:
            card = page.locator('article.card[data-item="1"]')
            await expect(card.locator(".status")).to_have_text("throttled", timeout=60_000)
            await expect(card.locator(".activity")).to_contain_text("429, retry 1")
            await expect(page.locator("#banner")).to_contain_text("1 agent waiting on the model API")
            await shoot(page, "board-throttled")
            await expect(page.locator('.column[data-stage="done"] article.card[data-item="1"]')).to_be_visible(
                timeout=60_000
            )
            await expect(page.locator("#banner")).to_be_hidden()
    kinds = [e.kind for e in project.store.events_after(0) if e.kind.startswith("throttle")]
    assert kinds == ["throttled", "throttle_cleared"]
