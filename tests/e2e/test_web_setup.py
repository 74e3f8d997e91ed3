"""The board for a project still being set up, in headless Chromium on a live server: the onboarding panel (gates
proven and added, the agent CLIs found) and the banner for an edit of project.toml that was refused.

The project's gates are a real Makefile's targets, proven in real worktrees; the agent CLIs the
panel lists are the real ones package-lock.json pins, found on the server's PATH.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.async_api import expect

from kits.agent_clis import CODEX
from kits.browser_kit import page_at, shoot
from kits.mcp_kit import served
from kits.pipeline_kit import Project, git

pytestmark = pytest.mark.browser

MAKEFILE = "test:\n\t@echo 3 tests pass\n\nlint:\n\t@echo 'main.c:1: missing semicolon'; exit 1\n"


async def test_the_onboarding_panel_proves_and_adds_a_gate_and_goes_once_the_project_has_what_it_needs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", f"{CODEX.parent}{os.pathsep}{os.environ['PATH']}")  # the real CLIs, on the server's PATH
    project = Project(tmp_path)
    (project.root / "Makefile").write_text(MAKEFILE)
    git(project.root, "add", "Makefile")
    git(project.root, "commit", "-q", "-m", "make")
    project.add_agent({"name": "coder", "role": "coder", "cli": "codex", "command": "codex-not-installed"})
    project.configure()
    async with served(project) as s, page_at(f"{s.url}/#/") as page:
        panel = page.locator(".onboarding")
        await expect(panel).to_contain_text("No gates yet")
        await expect(panel).to_contain_text("This repository uses make")
        await expect(panel.locator(".clis")).to_contain_text("claude")  # found, with its version
        await expect(panel.locator(".clis")).to_contain_text("codex")

        lint = panel.locator('li[data-gate="lint"]')
        await lint.get_by_role("button", name="Try and add").click()
        await expect(lint).to_have_attribute("data-outcome", "failed")
        await expect(lint.locator(".output")).to_contain_text("missing semicolon")
        await expect(lint.get_by_role("button", name="Add anyway")).to_be_visible()
        await shoot(page, "onboarding-1280x800")

        tests = panel.locator('li[data-gate="tests"]')
        await tests.get_by_role("button", name="Try and add").click()
        await expect(panel).not_to_contain_text("No gates yet")  # in force: the panel asked again
        assert [gate.name for gate in s.orch.config.gates] == ["tests"]
        await expect(panel).to_contain_text("No coder this machine can start")

        text = project.paths.config_file.read_text()
        project.paths.config_file.write_text(text.replace('command = "codex-not-installed"', 'command = "codex"'))
        await expect(page.locator(".onboarding-slot")).to_be_hidden()  # the edit applied: nothing is missing


async def test_a_refused_edit_of_project_toml_is_on_the_board_until_it_is_mended(tmp_path: Path) -> None:
    project = Project(tmp_path)
    project.agent("coder", [])
    project.configure(gates=[("tests", "true")])
    good = project.paths.config_file.read_text()
    async with served(project) as s, page_at(f"{s.url}/#/") as page:
        project.paths.config_file.write_text(good.replace("timeout_s = 60", "timeout_s = 0"))
        banner = page.locator("#config-banner")
        await expect(banner).to_contain_text("project.toml: an edit was refused")
        await expect(banner).to_contain_text("gate[1].timeout_s: expected a number greater than 0, got 0")
        await expect(banner).to_contain_text("the last good configuration stays in force")
        await shoot(page, "config-refused-1280x800")
        assert s.orch.config.gates[0].timeout_s == 60

        project.paths.config_file.write_text(good.replace("timeout_s = 60", "timeout_s = 90"))
        await expect(banner).to_be_hidden()
        assert s.orch.config.gates[0].timeout_s == 90


async def test_a_person_comments_on_a_diff_line_and_tells_the_coder_who_resumes_its_session(tmp_path: Path) -> None:
    project = Project(tmp_path)
    project.agent("coder", [
        [{"write": "greet.py", "text": "def greet(name):\n    return 'hi ' + name\n"}, {"commit": "greet"}],
        [{"write": "greet.py", "text": "def greet(name=''):\n    return 'hi ' + (name or 'there')\n"},
         {"commit": "empty name"}],
    ])  # fmt: skip
    project.configure(qa_mode="human")
    item = project.add("Greet people")
    async with served(project) as s, page_at(f"{s.url}/#/items/{item.id}") as page:
        await expect(page.locator(".item-head")).to_contain_text("QA")
        line = page.locator('.diff-lines .line[data-path="greet.py"][data-line="2"]')
        await line.get_by_role("button", name="Comment on greet.py line 2").click()
        await page.get_by_label("Your comment on greet.py line 2").fill("an empty name should greet 'there'")
        await page.get_by_role("button", name="Add comment").click()
        await expect(page.locator(".talk-pending")).to_contain_text("1 comment on the diff")
        await page.get_by_label("Tell the coder").fill("Handle a missing name too.")
        await shoot(page, "talk-line-comment-1280x800")
        await page.get_by_role("button", name="Send to the coder").click()
        message = page.locator(".talk-message")
        await expect(message).to_contain_text("Handle a missing name too.")
        await expect(message).to_contain_text("greet.py:2 an empty name should greet 'there'")
        await expect(message).to_have_attribute("data-taken", "true")  # the coder's next run took it
        await expect(page.locator(".item-head")).to_contain_text("QA")  # coded again, back for review
        await shoot(page, "talk-taken-1280x800")
    first, second = project.store.runs(item.id)
    assert second.resumed_session == first.session_id
    prompt = project.prompts(item.id)[1]
    assert "Handle a missing name too." in prompt and "- greet.py:2: an empty name should greet 'there'" in prompt


async def test_a_spikes_report_is_read_on_its_page_and_the_spike_closed_without_a_merge(tmp_path: Path) -> None:
    project = Project(tmp_path)
    project.agent("coder", [[{"say": "Findings: the parser is slow.\nRecommendation: cache its output."}]])
    project.configure()
    spike = project.add("Why is it slow", kind="spike")
    async with served(project) as s, page_at(f"{s.url}/#/items/{spike.id}") as page:
        report = page.locator(".item-report .report")
        await expect(report).to_contain_text("Recommendation: cache its output.")
        await expect(page.locator(".item-head")).to_contain_text("review")
        await shoot(page, "spike-report-1280x800")
        await page.get_by_role("button", name=f"Close #{spike.id} Why is it slow").click()
        await expect(page.locator(".item-head")).to_contain_text("Done")
    assert project.base_log() == ["initial"]
