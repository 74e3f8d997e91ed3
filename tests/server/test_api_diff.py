"""GET /api/items/{id}/diff over the real app, on a real repository: a branch's work, none yet, and a merge."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from gangline.core.stages import Stage
from gangline.repo.diff import MAX_DIFF_BYTES
from gangline.server.app import create_app
from gangline.server.state import state_of
from kits.helpers import commit_file, git
from kits.pipeline_kit import FAST, Project

LATER = "2999-01-01T00:00:00Z"  # keeps an item in the backlog, so no agent touches its branch
DIFF_PATH = "/api/items/{item_id}/diff"


@pytest.fixture
def project(tmp_path):  # type: ignore[no-untyped-def]
    return Project(tmp_path)


def make_app(project: Project) -> FastAPI:
    if project.config is None:  # a coder that never runs: the items wait in the backlog
        project.agent("coder", [[{"say": "unused"}]])
        project.configure()
    assert project.config is not None
    return create_app(project.paths, project.config, project.store, dict(os.environ), settings=FAST)


@asynccontextmanager
async def client_for(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    client = httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1")
    async with client, app.router.lifespan_context(app):
        yield client


async def waiting_item(client: httpx.AsyncClient, title: str) -> dict[str, Any]:
    created = await client.post("/api/items", json={"title": title, "start_after": LATER})
    assert created.status_code == 201, created.text
    item: dict[str, Any] = created.json()
    return item


async def diff_of(client: httpx.AsyncClient, item_id: int) -> dict[str, Any]:
    response = await client.get(f"/api/items/{item_id}/diff")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_a_branch_with_work_shows_its_commits_files_and_diff_against_where_it_left_the_base(
    project: Project,
) -> None:
    async with client_for(make_app(project)) as client:
        item = await waiting_item(client, "Greet people")
        branch = f"gangline/{item['id']}-greet-people"
        root = project.root
        (root / "notes.txt").write_text("one\ntwo\n")
        git(root, "add", "notes.txt")
        git(root, "commit", "-q", "-m", "notes")
        git(root, "checkout", "-q", "-b", branch)
        commit_file(root, "hello.txt", "hello\n<b>world</b>\n", "say hello")
        (root / "README.md").write_text("# project\n\nA greeting.\n")
        (root / "logo.bin").write_bytes(bytes(range(256)))
        git(root, "mv", "notes.txt", "renamed.txt")
        git(root, "add", "-A")
        git(root, "commit", "-q", "-m", "describe it")
        git(root, "checkout", "-q", "main")
        commit_file(root, "later.txt", "on main after the branch left\n", "unrelated")

        diff = await diff_of(client, item["id"])

    assert diff["base"] == "main" and diff["branch"] == branch and diff["merged"] is False
    assert [c["subject"] for c in diff["commits"]] == ["describe it", "say hello"]
    assert all(len(c["sha"]) == 40 for c in diff["commits"])
    files = {f["path"]: f for f in diff["files"]}
    assert files["hello.txt"] == {"path": "hello.txt", "additions": 2, "deletions": 0, "binary": False}
    assert files["README.md"]["additions"] == 2 and files["README.md"]["deletions"] == 0
    assert files["logo.bin"]["binary"] is True
    assert files["renamed.txt"]["additions"] == 0  # a pure rename, under its new name
    assert "later.txt" not in files  # the base's own later work is not the item's
    assert "+<b>world</b>" in diff["diff"] and "later.txt" not in diff["diff"]
    assert diff["truncated"] is False


async def test_an_item_never_started_has_an_empty_diff(project: Project) -> None:
    async with client_for(make_app(project)) as client:
        item = await waiting_item(client, "Not yet")
        diff = await diff_of(client, item["id"])
    assert diff == {
        "base": "main",
        "branch": f"gangline/{item['id']}-not-yet",
        "merged": False,
        "commits": [],
        "files": [],
        "diff": "",
        "truncated": False,
    }


async def test_an_unknown_item_is_a_404_in_the_error_shape(project: Project) -> None:
    async with client_for(make_app(project)) as client:
        response = await client.get("/api/items/999/diff")
    assert response.status_code == 404 and response.headers["content-type"] == "application/json"
    assert response.json()["error"]["code"] == "not_found"
    assert "999" in response.json()["error"]["message"]


async def test_a_huge_diff_is_cut_at_a_line_within_the_bound(project: Project) -> None:
    async with client_for(make_app(project)) as client:
        item = await waiting_item(client, "Big")
        git(project.root, "checkout", "-q", "-b", f"gangline/{item['id']}-big")
        commit_file(project.root, "big.txt", "".join(f"line {n:07d}\n" for n in range(60_000)), "big")
        git(project.root, "checkout", "-q", "main")
        diff = await diff_of(client, item["id"])
    assert diff["truncated"] is True
    assert len(diff["diff"].encode()) <= MAX_DIFF_BYTES and diff["diff"].endswith("\n")
    assert diff["files"] == [{"path": "big.txt", "additions": 60_000, "deletions": 0, "binary": False}]


async def test_a_merged_item_shows_its_merged_commit_against_its_parent(project: Project) -> None:
    work = [{"say": "on it"}, {"write": "work/page.txt", "text": "the page\n"}, {"commit": "add the page"}]
    project.agent("coder", [work])
    project.configure()
    app = make_app(project)
    async with client_for(app) as client:
        item_id = (await client.post("/api/items", json={"title": "Add a page"})).json()["id"]
        orch = state_of(app).running()
        seen = -1
        async with asyncio.timeout(90):
            while project.stage(item_id) is not Stage.DONE:
                seen = await orch.wait_changed(seen, 90)
        commit_file(project.root, "after.txt", "the base moves on\n", "after the merge")
        diff = await diff_of(client, item_id)
        merged = project.item(item_id).merged_commit

    assert merged is not None and diff["merged"] is True
    assert [c["sha"] for c in diff["commits"]] == [merged]
    assert diff["commits"][0]["subject"] == "Add a page (#1)"
    assert diff["files"] == [{"path": "work/page.txt", "additions": 1, "deletions": 0, "binary": False}]
    assert "+the page" in diff["diff"] and "after.txt" not in diff["diff"]
