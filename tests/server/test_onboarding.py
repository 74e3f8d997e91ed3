"""A project's first steps through REST, the people's MCP tools and the CLI: what it lacks, and gates added.

The project is a real repository with a Makefile (its ``test`` target passes, its ``lint``
target fails); the app runs on a real uvicorn, and every proof runs in a real worktree.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from gangline.project.config import load_project
from kits.helpers import cli_env, gangline
from kits.mcp_kit import TOKEN, mcp_client, served, text_of
from kits.pipeline_kit import Project, git

MAKEFILE = "test:\n\t@echo 3 tests pass\n\nlint:\n\t@echo 'main.c:1: missing semicolon'; exit 1\n"


@pytest.fixture
def project(tmp_path: Path) -> Project:
    project = Project(tmp_path)
    (project.root / "Makefile").write_text(MAKEFILE)
    git(project.root, "add", "Makefile")
    git(project.root, "commit", "-q", "-m", "make")
    project.agent("coder", [])
    project.configure()
    return project


async def test_rest_says_what_is_missing_proves_a_gate_adds_it_and_the_server_uses_it_at_once(
    project: Project,
) -> None:
    async with (
        served(project, TOKEN) as s,
        httpx.AsyncClient(base_url=s.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120) as client,
    ):
        found = (await client.get("/api/onboarding")).json()
        assert found["needed"] is True and found["gates"] == 0 and found["coders"] == ["coder"]
        assert found["stacks"] == ["make"]
        proposed = [(p["name"], p["command"]) for p in found["proposals"]]
        assert proposed == [("tests", "make test"), ("lint", "make lint")]

        added = (await client.post("/api/onboarding/gates", json={"name": "tests", "command": "make test"})).json()
        assert (added["passed"], added["added"], added["outcome"]) == (True, True, "passed")
        assert "3 tests pass" in added["output"]
        assert [g.name for g in s.orch.config.gates] == ["tests"]  # in force without a restart
        after = (await client.get("/api/onboarding")).json()
        assert after["needed"] is False and [p["name"] for p in after["proposals"]] == ["lint"]
        assert (await client.get("/api/onboarding", params={"when_needed": True})).json()["proposals"] == []

        failed = (await client.post("/api/onboarding/gates", json={"name": "lint", "command": "make lint"})).json()
        assert (failed["passed"], failed["added"]) == (False, False)
        assert "missing semicolon" in failed["output"] and failed["outcome"] == "failed with exit code 2"
        assert [g.name for g in load_project(project.paths, {}).gates] == ["tests"]  # nothing written

        anyway = {"name": "lint", "command": "make lint", "anyway": True}
        assert (await client.post("/api/onboarding/gates", json=anyway)).json()["added"] is True
        text = project.paths.config_file.read_text()
        assert '# failed with exit code 2 when it was added, and kept\n[[gate]]\nname = "lint"' in text


BAD = [
    ({"name": "tests", "command": "true"}, "name", "already has a gate named 'tests'; choose another name"),
    ({"name": "bad/name", "command": "true"}, "name", "should match pattern"),
    ({"name": "ok", "command": ""}, "command", "at least 1 character"),
]


@pytest.mark.parametrize(("given", "field", "words"), BAD)
async def test_the_same_bad_gate_gets_the_same_error_from_rest_mcp_and_the_cli(
    project: Project, given: dict[str, Any], field: str, words: str
) -> None:
    project.configure(gates=[("tests", "true")])
    before = project.paths.config_file.read_text()
    async with served(project, TOKEN) as s:
        async with httpx.AsyncClient(base_url=s.url, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
            answer = await client.post("/api/onboarding/gates", json=given)
        assert answer.status_code == 422, answer.text
        rest = {k: v for k, v in answer.json()["error"].items() if k != "location"}  # where in the request: REST's own
        assert rest["code"] == "invalid" and rest["field"] == field and words in rest["message"], rest
        async with mcp_client(s.mcp_url, TOKEN) as person:
            result = await person.call_tool("add_gate", given)
        assert result.is_error
        assert json.loads(text_of(result))["error"] == rest
    out = gangline("gates", "add", given["name"], given["command"], cwd=project.root, env=cli_env())
    option = {"name": "NAME", "command": "COMMAND"}[field]
    assert out.returncode == 2 and f"{option}: " in out.stderr and words in out.stderr, out.stderr
    assert project.paths.config_file.read_text() == before


def test_the_cli_lists_what_is_missing_and_adds_a_gate_that_passes(project: Project) -> None:
    shown = gangline("gates", cwd=project.root, env=cli_env())
    assert shown.returncode == 0, shown.stderr
    assert "No gates: nothing checks the agents' work before it is merged." in shown.stdout
    suggested = "suggested tests: make test (Makefile has a 'test' target); gangline gates add tests 'make test'"
    assert suggested in shown.stdout
    added = gangline("gates", "add", "tests", "make test", cwd=project.root, env=cli_env())
    assert added.returncode == 0 and "✓ tests: make test passed" in added.stdout, added.stdout + added.stderr
    refused = gangline("gates", "add", "lint", "make lint", cwd=project.root, env=cli_env())
    assert refused.returncode == 1 and "missing semicolon" in refused.stdout and "not added" in refused.stdout
    assert [g.name for g in load_project(project.paths, {}).gates] == ["tests"]
