"""``gangline overview``: what a merged item changed and how it got there, the same through REST, MCP and the CLI.

A fake coder carries an item to main on a real repository: its first attempt fails a gate, QA
(an agent) sends the second back once, and the third is merged.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from kits.helpers import cli_env, gangline, ok
from kits.mcp_kit import mcp_client, served, text_of
from kits.pipeline_kit import Project, commit_file


def verdict(result: str, summary: str) -> list[dict[str, object]]:
    return [{"final_json": {"verdict": result, "criteria": [{"index": 1, "passed": result == "pass"}],
                            "summary": summary}}]  # fmt: skip


async def test_a_merged_items_overview_is_the_same_through_rest_mcp_and_the_cli(tmp_path: Path) -> None:
    project = Project(tmp_path)
    project.agent("coder", [commit_file("src/app.py", "print(1)\n"), commit_file("src/app.py", "print(2)\n"),
                            commit_file("src/app.py", "print(3)\nprint('done')\n")])  # fmt: skip
    project.agent("reviewer", [verdict("fail", "it prints the wrong number"), verdict("pass", "prints 3")], role="qa")
    flag = project.scenarios / "tried"
    project.configure(qa_mode="agent", gates=[("once", f"test -f {flag} || {{ touch {flag}; exit 1; }}")])
    item = project.add("Print three", criteria=[{"text": "it prints 3"}])
    await project.run_until_idle()

    async with served(project) as s, httpx.AsyncClient(base_url=s.url) as client:
        rest = (await client.get(f"/api/items/{item.id}/overview")).json()
        async with mcp_client(f"{s.url}/mcp", None) as person:
            said = json.loads(text_of(await person.call_tool("item_overview", {"item_id": item.id})))
    assert said == rest
    assert rest["commit"]["subject"] == f"Print three (#{item.id})"
    assert rest["commit"]["sha"] == project.item(item.id).merged_commit
    assert [(f["path"], f["additions"], f["deletions"]) for f in rest["files"]] == [("src/app.py", 2, 0)]
    assert (rest["additions"], rest["deletions"]) == (2, 0)
    assert rest["runs"] == {"coder": 3, "qa": 2}
    assert rest["retries"] == 2  # the failed gate, and the rejection
    assert [r.splitlines()[0] for r in rest["rejections"]] == ["QA rejected the work: it prints the wrong number"]
    assert rest["passed_by"] == "qa:reviewer"
    assert [(g["name"], g["context"], g["passed"]) for g in rest["gates"]] == [("once", "merge", True)]
    assert rest["criteria"] == [{"text": "it prints 3", "checked": True}]
    runs = project.store.runs(item.id)
    assert rest["cost_usd"] == sum(run.cost_usd for run in runs) > 0
    assert rest["lead_time_s"] >= rest["work_time_s"] >= rest["agent_time_s"] > 0

    shown = ok(gangline("overview", str(item.id), cwd=project.root, env=cli_env()))  # no server: read here
    said_cli = " ".join(shown.split())
    assert f"#{item.id} Print three (story): merged onto main as {rest['commit']['sha'][:12]}" in said_cli
    assert "1 file(s), +2 -0 src/app.py (+2 -0)" in said_cli
    assert "Agent runs: 3 coder, 2 qa" in said_cli and "2 failed attempt(s) before the one merged" in said_cli
    assert (
        "passed by qa:reviewer" in said_cli
        and "sent back: QA rejected the work: it prints the wrong number" in said_cli
    )
    assert "Gates at merge: once ✓" in said_cli and "[x] it prints 3" in said_cli
    as_json = json.loads(ok(gangline("overview", str(item.id), "--json", cwd=project.root, env=cli_env())))
    assert as_json == rest
