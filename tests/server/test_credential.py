"""Only a person holds a person's powers: the project's secret, the board's one-time login; agents see neither."""

from __future__ import annotations

import asyncio
import os
import re
import stat
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from gangline.project.secret import person_secret, read_secret
from gangline.server.login import SESSION_COOKIE
from kits.mcp_kit import make_app
from kits.pipeline_kit import Project, commit_file

TOKEN = "the-person-s-secret-0123456789"


@pytest.fixture
def project(tmp_path: Path) -> Project:
    project = Project(tmp_path)
    project.agent("coder", [commit_file("a.txt", "a\n")])
    project.configure()
    return project


def test_the_secret_is_made_once_readable_by_its_owner_only_and_kept(project: Project) -> None:
    assert read_secret(project.paths) is None
    made = person_secret(project.paths)
    path = project.paths.state_dir / "secret"
    assert len(made) >= 32 and stat.S_IMODE(path.stat().st_mode) == 0o600
    path.chmod(0o644)
    assert person_secret(project.paths) == made == read_secret(project.paths)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # loosened by someone: tightened again


def every_route(app: FastAPI) -> list[tuple[str, str]]:
    """Every documented route, and the MCP endpoint and the board's page, with ids filled in."""
    documented = [(m.upper(), path) for path, ops in app.openapi()["paths"].items() for m in ops]
    return [(method, re.sub(r"\{[^}]+\}", "1", path)) for method, path in documented]


async def test_without_the_credential_every_route_but_health_and_the_login_is_refused(project: Project) -> None:
    app = make_app(project, token=TOKEN)
    routes = every_route(app)
    assert ("POST", "/api/items") in routes and ("GET", "/api/events") in routes  # the table is the app's own
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as anonymous:
        for method, path in routes:
            if path in ("/health", "/login"):
                continue
            refused = await anonymous.request(method, path, json={})
            if path == "/node/join":  # a node joins with a one-time token in the body, which this one lacks
                assert refused.status_code == 422 and refused.json()["error"]["field"] == "token"
                continue
            assert refused.status_code == 401, (method, path, refused.status_code)
            assert refused.json()["error"]["code"] == "unauthorized"
        said = (await anonymous.get("/api/items")).json()["error"]["message"]
        assert "gangline login" in said and ".gangline/secret" in said
        assert (
            await anonymous.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
        ).status_code == 401


async def test_a_login_link_works_once_and_its_cookie_opens_the_board_for_that_browser_only(project: Project) -> None:
    app = make_app(project, token=TOKEN)
    code = app.state.gangline.logins.new_code()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as browser:
        landed = await browser.get(f"/login?code={code}")
        assert landed.status_code == 303 and landed.headers["location"] == "/"
        cookie = landed.headers["set-cookie"]
        assert cookie.startswith(f"{SESSION_COOKIE}=") and "HttpOnly" in cookie and "SameSite=strict" in cookie
        async with app.router.lifespan_context(app):
            assert (await browser.get("/api/items")).status_code == 200
            added = await browser.post(
                "/api/items", json={"title": "from the board"}, headers={"Origin": "http://127.0.0.1"}
            )
            assert added.status_code == 201
            forged = await browser.post("/api/items", json={"title": "csrf"}, headers={"Origin": "http://evil.example"})
            assert forged.status_code == 403
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as other:
        again = await other.get(f"/login?code={code}")
        assert again.status_code == 401 and "gangline login" in again.json()["error"]["message"]
        other.cookies.set(SESSION_COOKIE, "made-up")
        assert (await other.get("/api/items")).status_code == 401


# --- gangline serve, as a person runs it --------------------------------------------------------


def _env() -> dict[str, str]:
    drop = ("GANGLINE_TOKEN", "FORCE_COLOR", "TTY_COMPATIBLE")
    return {**{k: v for k, v in os.environ.items() if k not in drop}, "COLUMNS": "300"}


@asynccontextmanager
async def serving(project: Project, *extra: str) -> AsyncIterator[tuple[str, str | None, str]]:
    """``gangline serve`` in the project: (url, login link, first lines); stopped after."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gangline", "serve", "--port", "0", *extra, cwd=project.root, env=_env(),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(60):
            while not any(line.startswith("gangline serving") for line in lines):
                lines.append((await proc.stdout.readline()).decode())
                assert lines[-1], f"serve ended: {lines}"
            if "--no-auth" not in extra:
                lines.append((await proc.stdout.readline()).decode())
        text = "".join(lines)
        url = re.search(r"gangline serving (http://[\d.]+:\d+)", text)
        login = re.search(r"(http://\S+/login\?code=\S+)", text)
        assert url is not None, text
        yield url[1], login[1] if login else None, text
    finally:
        proc.terminate()
        async with asyncio.timeout(30):
            await proc.wait()


async def _cli(project: Project, *args: str, **env: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gangline", *args, cwd=project.root, env=_env() | env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    async with asyncio.timeout(60):
        out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


async def test_serve_guards_loopback_with_the_project_secret_the_cli_finds_and_prints_a_login_link(
    project: Project,
) -> None:
    async with serving(project) as (url, login, _text):
        secret = read_secret(project.paths)
        assert secret is not None and login is not None
        async with httpx.AsyncClient(base_url=url) as http:
            assert (await http.get("/api/items")).status_code == 401  # loopback is no credential
            origin = {"Origin": url}  # the forged-origin write an agent once made
            assert (await http.post("/api/items", json={"title": "x"}, headers=origin)).status_code == 401
            assert (await http.get(login, follow_redirects=False)).status_code == 303
            assert (await http.get("/api/items")).status_code == 200  # the cookie it set
        code, out = await _cli(project, "add", "Through the server")
        assert code == 0, out  # the CLI found the secret by itself
        code, out = await _cli(project, "login")
        assert code == 0 and "/login?code=" in out, out
        fresh = re.search(r"(http://\S+/login\?code=\S+)", out)
        assert fresh is not None and fresh[1] != login
        async with httpx.AsyncClient() as browser:
            assert (await browser.get(fresh[1], follow_redirects=False)).status_code == 303
            assert (await browser.get(fresh[1], follow_redirects=False)).status_code == 401  # once


async def test_serve_no_auth_is_loopback_only_and_says_what_it_gives_away(project: Project) -> None:
    async with serving(project, "--no-auth") as (url, login, text):
        assert login is None and "no credential guards this server" in text
        async with httpx.AsyncClient(base_url=url) as http:
            assert (await http.get("/api/items")).status_code == 200


@pytest.mark.parametrize("from_env", [False, True])
async def test_nothing_an_agent_is_given_carries_the_person_s_credential(project: Project, from_env: bool) -> None:
    seen = project.scenarios / "seen"
    seen.mkdir()
    look = (
        f"env > {seen}/env; cat /proc/$PPID/cmdline | tr '\\0' ' ' > {seen}/argv; "
        f"cat {project.paths.state_dir}/secret > {seen}/secret 2>/dev/null; echo done > {seen}/finished"
    )
    project.agents.clear()
    project.agent("coder", [[{"run": look}, *commit_file("a.txt", "a\n")]])
    project.configure()
    secret = person_secret(project.paths)
    env = {"GANGLINE_TOKEN": TOKEN} if from_env else {}
    code, out = await _cli(project, "add", "Look for secrets", **env)
    assert code == 0, out
    code, out = await _cli(project, "run", "--until-idle", "--quiet", **env)
    assert (seen / "finished").exists(), out
    for name in ("env", "argv"):
        said = (seen / name).read_text()
        assert secret not in said and TOKEN not in said, name
    assert "done" in (seen / "finished").read_text()
    assert (seen / "secret").read_text() == ""  # .gangline/ is not in the sandbox at all
