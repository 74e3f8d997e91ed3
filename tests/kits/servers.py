"""``gangline serve`` and ``gangline node`` as processes of their own, and waiting on what they make true."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from asyncio.subprocess import Process
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx

from kits.pipeline_kit import Project

TOKEN = "served-test-token-0123456789"


def env() -> dict[str, str]:
    """The environment the processes get: the test's own (its venv's scripts first), the person's token."""
    base = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")}
    path = f"{Path(sys.executable).parent}{os.pathsep}{base.get('PATH', '')}"
    return {**base, "COLUMNS": "200", "GANGLINE_TOKEN": TOKEN, "PATH": path}


async def serve(project: Project, *args: str) -> tuple[Process, str]:
    """``gangline serve --port 0 ARGS`` as its own process, and the URL it printed once listening."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gangline", "serve", "--port", "0", *args, cwd=project.root, env=env(),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    async with asyncio.timeout(60):
        line = (await proc.stdout.readline()).decode()
    assert line.startswith("gangline serving http://"), line
    return proc, line.split()[2].rstrip(":")


async def join_token(url: str) -> str:
    """A one-time join token, asked of the server as a person."""
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        answer = await client.post("/api/nodes/token")
        assert answer.status_code == 200, answer.text
        return str(answer.json()["token"])


async def node(
    home: Path, *args: str, servers: tuple[str, ...] = (), token: str | None = None, inside: Sequence[str] = ()
) -> Process:
    """``gangline node`` as its own process (the fake agent CLI, one coder slot unless ``args`` say otherwise).

    ``inside``: what runs it elsewhere (``ip netns exec NAME``: a network namespace of its own).
    """
    given = [arg for url in servers for arg in ("--server", url)] + (["--token", token] if token else [])
    return await asyncio.create_subprocess_exec(
        *inside, sys.executable, "-m", "gangline", "node", "--home", str(home), "--cli", "fake", *given, *args,
        env=env(), stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def until(holds: Callable[[], bool], what: str, bound_s: float = 90) -> None:
    """Until ``holds()`` (the store, read across processes), bounded."""
    deadline = time.monotonic() + bound_s
    while not holds():
        assert time.monotonic() < deadline, f"not within {bound_s}s: {what}"
        await asyncio.sleep(0.02)  # polling a condition another process makes true, with a bound


async def stop(proc: Process) -> str:
    """SIGTERM (unless it ended), and what it said on stderr."""
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
    async with asyncio.timeout(60):
        _, err = await proc.communicate()
    return err.decode()


async def kill(*procs: Process) -> None:
    for proc in procs:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
