"""The server's recent log, read by a person through REST, the people's MCP tool and ``gangline server-log``.

``gangline serve`` runs as a process of its own; a broken edit of project.toml makes it log a
warning with its fields, which every door then shows in the same words.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from kits.helpers import cli_env, gangline, ok
from kits.mcp_kit import mcp_client, text_of
from kits.pipeline_kit import Project
from kits.servers import TOKEN, kill, serve, until


async def test_a_warning_the_server_logged_is_read_the_same_through_rest_mcp_and_the_cli(tmp_path: Path) -> None:
    project = Project(tmp_path)
    project.agent("coder", [])
    project.configure()
    server, url = await serve(project)
    try:
        text = project.paths.config_file.read_text()
        project.paths.config_file.write_text(text + "\nmax_retries = -1\n")
        await until(lambda: any(e.kind == "config_refused" for e in project.store.events_after()), "the edit refused")
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
            rest = (await client.get("/api/server-log", params={"level": "warning"})).json()
            assert (await client.get("/api/server-log", params={"level": "loud"})).status_code == 422
        [refused] = [e for e in rest if e["fields"].get("action") == "config_refused"]
        assert refused["level"] == "warning" and refused["message"].startswith("configuration edit refused")
        assert "max_retries" in refused["fields"]["error"]
        async with mcp_client(f"{url}/mcp", TOKEN) as person:
            said = json.loads(text_of(await person.call_tool("server_log", {"level": "warning"})))
        assert said["entries"] == rest
        shown = ok(gangline("server-log", "--level", "warning", cwd=project.root, env=cli_env(GANGLINE_TOKEN=TOKEN)))
        assert "WARNING configuration edit refused; the last good one stays" in shown
        assert "action=config_refused" in shown
        project.paths.config_file.write_text(text)  # mended: applied, which the server logs at info
        await until(lambda: any(e.kind == "config_applied" for e in project.store.events_after()), "the edit applied")
        listed = json.loads(ok(gangline("server-log", "--json", cwd=project.root, env=cli_env(GANGLINE_TOKEN=TOKEN))))
        assert refused in listed  # the ring keeps info lines too, which stderr (warnings) does not show
        assert [e["message"] for e in listed if e["level"] == "info"][-1] == "configuration applied"
    finally:
        await kill(server)
    gone = gangline("server-log", cwd=project.root, env=cli_env())
    assert gone.returncode == 1 and "error:" in gone.stderr and "server" in gone.stderr
