"""The board's operations views in headless Chromium on a live server: Top (each live run's processes, read again
while open), and on a merged item's page its hooks and how it got here.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from playwright.async_api import expect

from kits.browser_kit import page_at, shoot
from kits.mcp_kit import served
from kits.pipeline_kit import Project, commit_file

pytestmark = pytest.mark.browser

BUSY = "timeout 120 sh -c 'while :; do :; done'"


async def test_top_shows_a_live_runs_process_tree_and_its_busy_process_and_empties_when_it_ends(
    tmp_path: Path,
) -> None:
    project = Project(tmp_path)
    project.agent("coder", [[{"run": BUSY}]])
    project.configure()
    item = project.add("Spin")
    async with served(project) as s, page_at(f"{s.url}/#/top") as page:
        table = page.locator(f'.top-run-box[data-run="{item.id}-coder-1"]')
        await expect(table.locator("h2")).to_contain_text(f"(#{item.id}, coder, coder)")
        busy = table.locator("tr.busy td.name", has_text="sh")
        await expect(busy).to_be_visible(timeout=30_000)  # a reading or two until the loop has used a core
        await expect(page.get_by_role("link", name="Top")).to_have_attribute("aria-current", "page")
        await shoot(page, "top-1280x800")
        await page.set_viewport_size({"width": 390, "height": 844})
        await shoot(page, "top-390x844")
        async with httpx.AsyncClient(base_url=s.url) as client:
            (await client.post(f"/api/items/{item.id}/stop", json={"reason": "enough"})).raise_for_status()
        await expect(page.locator(".top-body")).to_contain_text("No agent is running.")


async def test_a_merged_items_page_shows_its_hooks_last_results_and_how_it_got_here(tmp_path: Path) -> None:
    project = Project(tmp_path)
    project.agent("coder", [commit_file("a.txt", "a\n"), commit_file("a.txt", "a, formatted\n")])
    flag = project.scenarios / "formatted"
    check = f"test -f {flag} || {{ touch {flag}; echo 'a.txt would be reformatted'; exit 1; }}"
    project.configure(tables=f'[hooks]\nbefore_run = "echo ready"\nafter_run = "{check}"\n')
    item = project.add("Add a")
    async with served(project) as s, page_at(f"{s.url}/#/items/{item.id}") as page:
        hooks = page.locator(".item-hooks")
        await expect(page.locator(".item-head")).to_contain_text("Done", timeout=60_000)
        await expect(hooks.locator('li[data-gate="before_run"]')).to_contain_text("passed")
        await expect(hooks.locator('li[data-gate="after_run"]')).to_contain_text(
            "passed"
        )  # its last run, after a retry
        overview = page.locator(".item-overview")  # a merged item: how it got here
        await expect(overview).to_contain_text("2 coder")
        await expect(overview).to_contain_text("1 failed attempt(s) before the one merged")
        await expect(overview).to_contain_text("Passed by")
        await shoot(page, "hooks-and-overview-1280x800")
    retry = [e.reason for e in project.store.events_after() if e.item_id == item.id and e.kind == "retry"]
    assert retry and retry[0].startswith("Hook 'after_run' failed with exit code 1.")
