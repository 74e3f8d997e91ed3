"""The web UI in headless Chromium, on a live server (real uvicorn, real git) with fake agents.

Waits are Playwright's: each polls the page for a condition, bounded by the context's 30 s
timeout, so nothing sleeps on the clock. Fake agents hold still on ``wait_for_file`` until the
test creates the file, which is how a test catches an agent in the middle of its work.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Locator, Page, expect

from kits.browser_kit import DESKTOP, PHONE, overflows_horizontally, page_at, shoot
from kits.mcp_kit import TOKEN, served
from kits.pipeline_kit import Project, commit_file

pytestmark = pytest.mark.browser


def held_coder(
    project: Project, tmp_path: Path, before: str = "Starting on {item_slug}", after: str = "All done"
) -> None:
    """A coder that says ``before``, waits for ``go-<item id>`` in tmp_path, says ``after`` and commits."""
    steps = [
        {"say": before},
        {"wait_for_file": str(tmp_path / "go-{item_id}"), "timeout_s": 120},
        {"say": after},
        *commit_file("work/{item_slug}.txt", "done by {item_id}\n"),
    ]
    project.agent("coder", [steps])


def go(tmp_path: Path, item_id: int) -> None:
    (tmp_path / f"go-{item_id}").touch()


def card(page: Page, item_id: int, stage: str | None = None) -> Locator:
    column = f'.column[data-stage="{stage}"] ' if stage else ""
    return page.locator(f'{column}article.card[data-item="{item_id}"]')


async def test_the_board_has_a_column_per_stage_and_each_card_in_its_items_stage(tmp_path: Path) -> None:
    project = Project(tmp_path)
    held_coder(project, tmp_path)
    release_merge = tmp_path / "release-merge"
    # Item 4's merge waits in its gates until the test lets it go, so it can be seen in the merge column.
    hold_merge = f'case "$GANGLINE_RUN_ID" in 4-merge) while [ ! -e {release_merge} ]; do sleep 0.05; done;; esac'
    project.configure(qa_mode="server", gates=[("merge-hold", hold_merge)], concurrency={"coder": 5})
    project.add("Frozen in the backlog", frozen=True)
    project.add("Still coding")
    project.add("Waiting for a person's review", qa_mode="human")
    project.add("Merging")
    project.add("Finished")
    project.add("Put away", kind="bug")
    for item_id in (3, 5, 6):
        go(tmp_path, item_id)
    async with served(project) as s, httpx.AsyncClient(base_url=s.url) as rest, page_at(s.url) as page:
        await expect(card(page, 6, "done")).to_be_visible()
        assert (await rest.post("/api/items/6/archive")).status_code == 200
        go(tmp_path, 4)  # merges go one at a time: item 4's holds the merge slot only once 5 and 6 are through
        where = {1: "backlog", 2: "coding", 3: "qa", 4: "merge", 5: "done", 6: "archived"}
        for item_id, stage in where.items():
            await expect(card(page, item_id, stage)).to_be_visible()
        headings = await page.locator(".column h2").all_text_contents()
        assert [h.split()[0] for h in headings] == ["Backlog", "Coding", "QA", "Merge", "Done", "Archived"]
        await expect(card(page, 2).locator(".status")).to_have_text("running")
        await expect(card(page, 2).locator(".agent")).to_have_text("coder")
        await expect(card(page, 1).locator(".status")).to_have_text("frozen")
        await expect(card(page, 4).locator(".activity")).to_contain_text("working · merging")
        await expect(card(page, 3).get_by_role("button", name="Approve #3")).to_be_visible()
        await expect(card(page, 6).locator(".kind")).to_have_text("bug")
        await shoot(page, "board-every-stage-1280x800")
        release_merge.touch()
        go(tmp_path, 2)
        await expect(card(page, 4, "done")).to_be_visible()


async def test_a_card_moves_across_the_columns_as_the_pipeline_runs_without_a_reload(tmp_path: Path) -> None:
    project = Project(tmp_path)
    held_coder(project, tmp_path)
    project.configure(qa_mode="human")
    project.add("Add a greeting")
    async with served(project) as s, page_at(s.url) as page:
        await expect(card(page, 1, "coding").locator(".status")).to_have_text("running")
        await page.evaluate("window.__same_page = true")  # gone if the page reloaded
        go(tmp_path, 1)
        await expect(card(page, 1, "qa")).to_be_visible()
        await card(page, 1).get_by_role("button", name="Approve #1").click()
        await expect(card(page, 1, "done")).to_be_visible()
        assert await page.evaluate("window.__same_page") is True
    assert project.base_file("work/add-a-greeting.txt") == "done by 1"


async def test_streamed_text_shows_while_the_agent_is_still_working_and_the_run_replays_after(tmp_path: Path) -> None:
    project = Project(tmp_path)
    held_coder(project, tmp_path, before="First words from the agent", after="Second words, after the wait")
    project.configure(qa_mode="server")
    project.add("Stream something")
    async with served(project) as s, page_at(f"{s.url}/#/items/1") as page:
        stream = page.locator(".stream")
        await expect(stream.locator(".msg-text").first).to_contain_text("First words from the agent")
        [live] = project.store.runs(1, live_only=True)  # the agent is still running: this was streamed live
        await expect(stream).to_have_attribute("data-run", live.id)
        await expect(stream.locator(".stream-status")).to_contain_text("live")
        await shoot(page, "item-live-stream-1280x800")
        go(tmp_path, 1)
        await expect(stream.locator(".msg-text").last).to_contain_text("Second words, after the wait")
        await expect(stream.locator('.tool[data-tool="Bash"]').first).to_be_visible()  # the commit
        await expect(page.locator('.runs [data-run="1-coder-1"]')).to_contain_text("succeeded")
        await expect(stream.locator(".stream-status")).to_contain_text("finished")
        # A finished run, opened afresh, replays from its log.
        await page.reload()
        await expect(page.locator(".stream .msg-text").first).to_contain_text("First words from the agent")
        await expect(page.locator(".stream .msg-text").last).to_contain_text("Second words, after the wait")
        await page.locator(".raw-toggle").check()
        await expect(page.locator(".stream .raw").first).to_be_visible()


HOSTILE = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'
ESCAPES = "\x1b[31mred\x1b[0m \x1b]0;spoofed title\x07 \x1b[2J"


async def test_agent_output_with_html_and_terminal_escapes_is_shown_as_text_and_runs_nothing(tmp_path: Path) -> None:
    project = Project(tmp_path)
    steps = [
        {"say": f"Look: {HOSTILE} {ESCAPES}"},
        {"run": "printf '<svg onload=\"window.__pwned=3\"></svg>\\033[1mbold\\033[0m\\n'"},
        *commit_file("work/x.txt", "x\n"),
    ]
    project.agent("coder", [steps])
    project.configure(qa_mode="human")
    project.add(f"Title {HOSTILE}", body=f"Body {HOSTILE} {ESCAPES}")
    async with served(project) as s, page_at(s.url) as page:
        await expect(card(page, 1, "qa")).to_be_visible()
        await expect(card(page, 1).locator(".title")).to_have_text(f"Title {HOSTILE}")
        await page.goto(f"{s.url}/#/items/1")
        await expect(page.locator(".stream .msg-text").first).to_contain_text("<script>window.__pwned=2</script>")
        await expect(page.locator('.stream .tool[data-tool="Bash"]').first).to_be_visible()
        await page.locator('.stream .tool[data-tool="Bash"] summary').first.click()
        await expect(page.locator(".stream")).to_contain_text('<svg onload="window.__pwned=3"></svg>bold')
        await expect(page.locator(".item-view h1")).to_contain_text(HOSTILE)
        assert await page.evaluate("window.__pwned") is None
        assert await page.locator("main img, main script, main svg[onload]").count() == 0
        text = await page.locator("main").inner_text()
        assert "\x1b" not in text and "\x07" not in text
        assert "red" in text and "spoofed title" not in await page.title()
        await shoot(page, "item-hostile-output-inert")


async def test_create_an_item_in_the_ui_then_edit_it_and_a_bad_field_is_named_without_losing_input(
    tmp_path: Path,
) -> None:
    project = Project(tmp_path)
    project.agent("coder", [[{"hang": True}]])
    project.configure()
    async with served(project) as s, page_at(s.url) as page:
        await page.get_by_role("button", name="New item").click()
        form = page.locator("form.item-form")
        await form.locator('[name="title"]').fill("Add a logout button")
        await form.locator('[name="body"]').fill("People want to log out.")
        await form.locator('[name="criterion"]').first.fill("A logout button ends the session")
        await form.locator('[name="depends_on"]').fill("42")  # no such item
        await form.get_by_role("button", name="Add item").click()
        error = form.locator('.field-error[data-field="depends_on"]')
        await expect(error).to_contain_text("42")
        await expect(form.locator('[name="title"]')).to_have_value("Add a logout button")  # nothing lost
        await form.locator('[name="depends_on"]').fill("")
        await form.get_by_role("button", name="Add item").click()
        await expect(page.locator(".item-view h1")).to_contain_text("Add a logout button")
        [item] = project.store.list_items()
        assert item.body == "People want to log out."
        assert [c.text for c in item.criteria] == ["A logout button ends the session"]
        assert item.state.frozen is False
        await page.get_by_role("button", name="Edit").click()
        await form.locator('[name="title"]').fill("Add a log-out button")
        await form.get_by_role("button", name="Save").click()
        await expect(page.locator(".item-view h1")).to_contain_text("Add a log-out button")
        assert project.store.get_item(item.id).title == "Add a log-out button"


async def test_the_cost_view_charts_spend_per_day_item_and_profile(tmp_path: Path) -> None:
    project = Project(tmp_path)
    project.agent("coder", [[{"say": "on it"}, {"cost": 0.25}, *commit_file("work/{item_slug}.txt", "x\n")]])
    project.configure(qa_mode="server")
    project.add("Costs a quarter")
    async with served(project) as s, page_at(s.url) as page:
        await expect(card(page, 1, "done")).to_be_visible()
        await expect(card(page, 1).locator(".cost")).to_have_text("$0.25")
        await page.get_by_role("navigation").get_by_role("link", name="Costs").click()
        view = page.locator(".costs-view")
        await expect(view.locator(".total")).to_contain_text("$0.25")
        for by, key in (("day", None), ("item", "1"), ("profile", "coder")):
            bars = view.locator(f'.chart[data-by="{by}"] .bar' + (f'[data-key="{key}"]' if key else ""))
            await expect(bars).to_have_count(1)
            assert float(await bars.get_attribute("data-usd") or 0) == pytest.approx(0.25)
        await shoot(page, "costs-1280x800")


async def test_a_rate_limited_item_shows_the_banner_with_its_reset_time(tmp_path: Path) -> None:
    project = Project(tmp_path)
    project.agent("coder", [[{"rate_limit": {"resets_in_s": 3600, "limit_type": "five_hour"}}]])
    project.configure()
    project.add("Hits the limit")
    async with served(project) as s, page_at(s.url) as page:
        banner = page.locator("#banner")
        await expect(banner).to_contain_text("Rate limited")
        await expect(banner).to_contain_text("#1")
        parked_until = project.item(1).parked_until
        assert parked_until is not None
        iso = await banner.locator("time").get_attribute("datetime")
        assert iso is not None and abs(_epoch(iso) - parked_until) < 1
        await expect(card(page, 1, "coding").locator(".status")).to_have_text("parked")
        await expect(page.locator("#health")).to_have_text("live")
        await shoot(page, "board-rate-limited")


def _epoch(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


async def test_a_card_action_is_reachable_and_done_from_the_keyboard(tmp_path: Path) -> None:
    project = Project(tmp_path)
    held_coder(project, tmp_path)
    project.configure(qa_mode="server")
    item = project.add("Start me from the keyboard")
    project.store.schedule_start(item.id, 32503680000.0, "person")  # the year 3000: it waits for a person
    async with served(project) as s, page_at(s.url) as page:
        start = card(page, 1, "backlog").get_by_role("button", name="Start #1")
        await expect(start).to_be_visible()
        for _ in range(40):  # Tab through the page until the Start button has focus
            await page.keyboard.press("Tab")
            if await start.evaluate("el => el === document.activeElement"):
                break
        else:
            pytest.fail("the Start button cannot be reached with Tab")
        await page.keyboard.press("Enter")
        await expect(card(page, 1, "coding").locator(".status")).to_have_text("running")
        go(tmp_path, 1)
        await expect(card(page, 1, "done")).to_be_visible()


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280x800", "390x844"])
async def test_every_view_fits_the_screen_at_desktop_and_phone_width(tmp_path: Path, viewport: dict[str, int]) -> None:
    project = Project(tmp_path)
    project.agent("coder", [[{"say": "on it"}, {"cost": 0.1}, *commit_file("work/{item_slug}.txt", "x\n")]])
    project.configure(qa_mode="human")
    for n in range(3):
        project.add(f"A fairly long item title that has to wrap on a phone, number {n + 1}", criteria=["it works"])
    size = f"{viewport['width']}x{viewport['height']}"
    async with served(project) as s, page_at(s.url, viewport) as page:
        for item_id in (1, 2, 3):
            await expect(card(page, item_id, "qa")).to_be_visible()
        assert not await overflows_horizontally(page)
        button = card(page, 1).get_by_role("button", name="Approve #1")
        box = await button.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"]
        await shoot(page, f"board-{size}")
        await page.goto(f"{s.url}/#/items/1")
        await expect(page.locator(".stream .msg-text").first).to_contain_text("on it")
        assert not await overflows_horizontally(page)
        await shoot(page, f"item-{size}")
        await page.goto(f"{s.url}/#/costs")
        await expect(page.locator(".costs-view .total")).to_contain_text("$0.30")
        assert not await overflows_horizontally(page)
        await shoot(page, f"costs-{size}")


async def test_a_server_with_a_token_asks_for_it_and_then_shows_the_board(tmp_path: Path) -> None:
    project = Project(tmp_path)
    project.agent("coder", [[{"hang": True}]])
    project.configure()
    project.add("Behind a token", frozen=True)
    async with served(project, token=TOKEN) as s, page_at(s.url) as page:
        dialog = page.locator("dialog form.token-form")
        await expect(dialog).to_be_visible()
        await dialog.get_by_label("Token").fill(TOKEN)
        await dialog.get_by_role("button", name="Connect").click()
        await expect(card(page, 1, "backlog")).to_be_visible()
        await expect(page.locator("#health")).to_have_text("live")
        async with httpx.AsyncClient(base_url=s.url) as anonymous:
            assert (await anonymous.get("/api/items")).status_code == 401  # the page had no data to give away
            page_response = await anonymous.get("/")
            assert page_response.status_code == 200
            assert "script-src 'self'" in page_response.headers["content-security-policy"]


async def test_the_demo_serves_the_board_prints_its_url_and_stays_up_until_interrupted(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("GANGLINE_TOKEN", "FORCE_COLOR", "TTY_COMPATIBLE")}
    env |= {"COLUMNS": "200", "TMPDIR": str(tmp_path)}
    demo = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gangline", "demo", "--agent", "fake", "--pace", "0.2", "--keep-serving",
        cwd=tmp_path, env=env, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert demo.stdout is not None
    try:
        url = (await _line_with(demo.stdout, "The board: ")).split("The board: ")[1].split()[0]
        async with page_at(url) as page:
            await expect(page.locator("article.card")).to_have_count(4)
            await expect(page.locator('.column[data-stage="coding"] .status').first).to_have_text("running")
            await _line_with(demo.stdout, "The board stays up at")
            await expect(page.locator('.column[data-stage="done"] article.card')).to_have_count(3)
            spike = page.locator('.column[data-stage="qa"] article.card.kind-spike')  # its report waits for a person
            await expect(spike).to_contain_text("Review hold")
            await shoot(page, "demo-board-done")
        demo.send_signal(signal.SIGINT)
        async with asyncio.timeout(30):
            assert await demo.wait() == 0
    finally:
        if demo.returncode is None:
            demo.kill()
            await demo.wait()


async def _line_with(stream: asyncio.StreamReader, text: str, timeout_s: float = 120) -> str:
    async with asyncio.timeout(timeout_s):
        while line := (await stream.readline()).decode():
            if text in line:
                return line
    pytest.fail(f"the demo ended without printing {text!r}")


async def test_the_nodes_view_makes_a_join_token_shows_the_node_at_work_and_drains_it(tmp_path: Path) -> None:
    from kits.servers import node as start_node

    project = Project(tmp_path)
    held_coder(project, tmp_path)
    project.configure(nodes={"server_agents": False})
    project.add("Built elsewhere")
    worker = None
    async with served(project) as s, page_at(f"{s.url}/#/nodes") as page:
        try:
            await expect(page.locator(".nodes-view .empty")).to_contain_text("No build node has joined")
            await page.get_by_role("button", name="Make a join token").click()
            command = await page.locator(".nodes-view .command code").text_content()
            assert command is not None and command.startswith(f"gangline node --server {s.url} --token ")
            worker = await start_node(tmp_path / "node", "--name", "box", servers=(s.url,), token=command.split()[-1])
            row = page.locator('table.nodes tr[data-node="box"]')
            await expect(row).to_have_attribute("data-state", "live")
            await expect(row.locator("td.runs a")).to_have_text("1-coder-1")  # its run, linked to its item
            await expect(row).to_contain_text("fake")
            await shoot(page, "nodes-at-work-1280x800")
            await row.get_by_role("button", name="Drain").click()
            await expect(row).to_have_attribute("data-state", "draining")
            go(tmp_path, 1)
            async with asyncio.timeout(60):
                out, _ = await worker.communicate()  # a drained node exits once its run is over
            assert worker.returncode == 0 and b"node box is drained" in out
            await expect(row.locator("td.runs")).to_have_text("—")
        finally:
            if worker is not None and worker.returncode is None:
                worker.kill()
                await worker.wait()
    assert project.stage(1).value == "done"
