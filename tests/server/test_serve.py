"""``gangline serve``: binding rules, a real uvicorn on loopback, and the command's own process on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from gangline.core.errors import ConfigError, ServerLockedError
from gangline.server.app import create_app
from gangline.server.guard import is_loopback
from gangline.server.lifetime import shutdown_bound
from gangline.server.serving import GRACEFUL_S, build_server, check_bind, read_token, serve_app
from gangline.server.state import state_of
from kits.mcp_kit import serving
from kits.pipeline_kit import FAST, Project, commit_file

TOKEN = "a-token-long-enough-for-serve-0123"
WORK = [*commit_file("work/{item_slug}.txt", "done\n")]


@pytest.fixture
def project(tmp_path: Path) -> Project:
    project = Project(tmp_path)
    project.agent("coder", [WORK])
    project.configure()
    return project


def make_app(project: Project, token: str | None = None) -> FastAPI:
    assert project.config is not None
    return create_app(project.paths, project.config, project.store, dict(os.environ), token=token, settings=FAST)


# --- binding rules -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.5", False),
        ("example.com", False),
        ("", False),
    ],
)
def test_only_loopback_addresses_count_as_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_only_loopback_may_be_served_without_a_credential() -> None:
    check_bind("127.0.0.1", no_auth=True)
    check_bind("0.0.0.0", no_auth=False)  # the project's secret guards it
    with pytest.raises(ConfigError) as refused:
        check_bind("0.0.0.0", no_auth=True)
    assert refused.value.field == "--no-auth" and "not a loopback address" in str(refused.value)


def test_the_token_comes_from_the_environment_and_must_not_be_short() -> None:
    assert read_token({}, "GANGLINE_TOKEN") is None
    assert read_token({"GANGLINE_TOKEN": "  "}, "GANGLINE_TOKEN") is None
    assert read_token({"T": f" {TOKEN}\n"}, "T") == TOKEN
    with pytest.raises(ConfigError) as short:
        read_token({"T": "secret"}, "T")
    assert short.value.field == "T" and "at least 16" in str(short.value)


# --- a real uvicorn, in this process -----------------------------------------------------------


async def test_a_real_uvicorn_on_loopback_serves_the_api_and_runs_the_pipeline(project: Project) -> None:
    app = make_app(project, token=TOKEN)
    async with serving(app) as url:
        port = int(url.rsplit(":", 1)[1])
        assert url.startswith("http://127.0.0.1:") and port > 0
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(base_url=url, headers=headers) as client:
            assert (await client.get("/health")).json() == {"ok": True, "db": True, "orchestrator": True}
            created = await client.post("/api/items", json={"title": "Over the wire"})
            assert created.status_code == 201
            item_id = created.json()["id"]
            orch = state_of(app).running()
            seen = -1
            async with asyncio.timeout(60):
                while (await client.get(f"/api/items/{item_id}")).json()["stage"] != "done":
                    seen = await orch.wait_changed(seen, 60)
            assert (await client.get("/api/items", headers={"Authorization": "Bearer wrong"})).status_code == 401
    assert not state_of(app).serving.running


async def test_an_open_event_stream_does_not_hold_up_shutdown(project: Project) -> None:
    app = make_app(project)
    ready: asyncio.Queue[str] = asyncio.Queue()
    server = build_server(app, "127.0.0.1", 0, ready.put_nowait)
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(server.serve())
        async with asyncio.timeout(30):
            url = await ready.get()
        async with httpx.AsyncClient(base_url=url) as client, client.stream("GET", "/api/events") as stream:
            assert stream.status_code == 200
            server.should_exit = True
            # Well before uvicorn's graceful timeout would cut the stream off.
            async with asyncio.timeout(GRACEFUL_S - 1):
                await asyncio.wait([task])
    assert not state_of(app).serving.running


async def test_a_server_whose_project_is_locked_stops_by_itself_and_says_why(project: Project) -> None:
    first = make_app(project)
    async with first.router.lifespan_context(first):
        second = make_app(project)
        announced: list[str] = []
        with pytest.raises(ServerLockedError):
            async with asyncio.timeout(30):
                await serve_app(second, build_server(second, "127.0.0.1", 0, announced.append))
    assert announced == []  # it never said it was serving


# --- the command's own process -----------------------------------------------------------------


def _env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k not in ("GANGLINE_TOKEN", "FORCE_COLOR", "TTY_COMPATIBLE")}
    return {**base, "COLUMNS": "200", **extra}


async def _gangline(*args: str, cwd: Path, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gangline",
        *args,
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def _finished(proc: asyncio.subprocess.Process, timeout_s: float = 60) -> tuple[int, str, str]:
    async with asyncio.timeout(timeout_s):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_serve_refuses_a_public_address_without_a_credential_and_a_short_token_and_exits_2(
    project: Project,
) -> None:
    opened = await _gangline("serve", "--host", "0.0.0.0", "--no-auth", cwd=project.root, env=_env())
    code, _out, err = await _finished(opened)
    assert code == 2 and "not a loopback address" in err and "--no-auth" in err and "Traceback" not in err
    short = await _gangline("serve", "--host", "0.0.0.0", cwd=project.root, env=_env(GANGLINE_TOKEN="short"))
    code, _out, err = await _finished(short)
    assert code == 2 and "at least 16 characters" in err


async def test_serve_prints_its_url_serves_and_stops_on_sigterm_within_its_bound(project: Project) -> None:
    proc = await _gangline("serve", "--port", "0", cwd=project.root, env=_env(GANGLINE_TOKEN=TOKEN))
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(60):
            line = (await proc.stdout.readline()).decode()
        assert line.startswith("gangline serving http://127.0.0.1:") and "GANGLINE_TOKEN" in line, line
        url = line.split()[2].rstrip(":")
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(base_url=url, headers=headers) as client:
            assert (await client.get("/health")).json()["ok"] is True
            assert (await client.post("/api/items", json={"title": "From outside", "frozen": True})).status_code == 201
            assert (await client.get("/api/items")).status_code == 200

        second = await _gangline("serve", "--port", "0", cwd=project.root, env=_env())
        code, _out, err = await _finished(second)
        assert code == 8 and "another gangline server" in err and "Traceback" not in err

        proc.send_signal(signal.SIGTERM)
        code, _out, err = await _finished(proc, timeout_s=shutdown_bound(FAST) + 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert code in (-signal.SIGTERM, 128 + signal.SIGTERM) and "Traceback" not in err, err
    [item] = project.store.list_items()
    assert item.title == "From outside"


async def test_serve_on_a_port_in_use_says_so_and_exits_2_without_a_traceback(project: Project) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = await _gangline("serve", "--port", str(port), cwd=project.root, env=_env())
        code, _out, err = await _finished(proc)
    assert code == 2 and f"--port: cannot listen on 127.0.0.1:{port}" in err and "Traceback" not in err
    assert not (project.root / ".gangline" / "server.json").exists()  # nobody is told of a server that is not there
