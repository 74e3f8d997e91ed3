"""project.toml edited while ``gangline serve`` runs agents: a good edit is used by what runs next, a broken one
changes nothing and is said by ``status`` (REST and the CLI).

The server is a process of its own; the edits are files written as a person's editor would.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from gangline.core.stages import Stage
from kits.helpers import cli_env, gangline, ok
from kits.pipeline_kit import Project
from kits.servers import TOKEN, kill, serve, until


def configure(project: Project, gates: list[tuple[str, str]], **settings: object) -> str:
    project.configure(gates=gates, **settings)
    return project.paths.config_file.read_text()


async def test_an_edit_while_an_agent_runs_is_used_by_the_next_gates_and_a_broken_one_changes_nothing(
    tmp_path: Path,
) -> None:
    project = Project(tmp_path)
    go = project.scenarios / "go"
    second_ran = project.scenarios / "second-gate-ran"
    project.agent("coder", [[{"wait_for_file": str(go), "timeout_s": 120},
                             {"write": "notes.md", "text": "n\n"}, {"commit": "notes"}]])  # fmt: skip
    configure(project, [("first", "true")])
    server, url = await serve(project)
    try:
        item = project.add("Take notes")
        await until(lambda: bool(project.store.runs(item.id, live_only=True)), "the coder runs")

        good = configure(project, [("first", "true"), ("second", f"touch {second_ran}")])
        await until(lambda: _kinds(project).count("config_applied") == 1, "the edit applied")

        project.paths.config_file.write_text(good.replace("timeout_s = 60", "timeout_s = -5", 1))
        await until(lambda: "config_refused" in _kinds(project), "the broken edit refused")
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
            config = (await client.get("/api/status")).json()["config"]
        assert config["error"].endswith("project.toml: gate[1].timeout_s: expected a number greater than 0, got -5")
        person = cli_env(GANGLINE_TOKEN=TOKEN)
        shown = ok(gangline("status", cwd=project.root, env=person))
        assert "project.toml: an edit was refused at" in shown and "the last good configuration stays in force" in shown
        assert "gate[1].timeout_s" in shown

        go.touch()  # the coder finishes: its gates are the last good configuration's
        await until(lambda: project.stage(item.id) is Stage.DONE, "the item merged")
        assert second_ran.exists()
        detail = json.loads(ok(gangline("show", str(item.id), "--json", cwd=project.root, env=person)))
        assert [gate["name"] for gate in detail["gates"]] == ["first", "second"]
    finally:
        await kill(server)


async def test_more_coders_allowed_by_an_edit_start_at_once(tmp_path: Path) -> None:
    project = Project(tmp_path)
    go = project.scenarios / "go"
    project.agent("coder", [[{"wait_for_file": str(go), "timeout_s": 120}, {"write": "{item_slug}.md", "text": "x"},
                             {"commit": "work"}]])  # fmt: skip
    configure(project, [], concurrency={"coder": 1})
    server, _url = await serve(project)
    try:
        first, second = project.add("One"), project.add("Two")
        await until(lambda: bool(project.store.runs(first.id, live_only=True)), "the first coder runs")
        assert project.stage(second.id) is Stage.BACKLOG  # one coder at a time

        configure(project, [], concurrency={"coder": 2})
        await until(lambda: bool(project.store.runs(second.id, live_only=True)), "the second coder starts")
        go.touch()
        await until(lambda: project.stage(first.id) is project.stage(second.id) is Stage.DONE, "both merged")
    finally:
        await kill(server)


def _kinds(project: Project) -> list[str]:
    return [event.kind for event in project.store.events_after()]
