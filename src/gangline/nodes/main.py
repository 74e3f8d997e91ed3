"""``gangline node``: join a server once with a token, then serve it as a build node until drained or stopped.

The node's home (``--home``) is laid out as a project's state: ``.gangline/node.json`` (its
name, its servers and its credential, readable by its owner only) and ``.gangline/runs`` (the
logs of the runs it ran), hidden from its agents; ``repo/``, its clone of the project; and
``worktrees/``, one per item. A node started again with the same home needs no token.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from dataclasses import dataclass
from pathlib import Path

from gangline.agents.adapter import write_private
from gangline.agents.installed import installed_clis
from gangline.agents.recovery import kill_groups, leftover_groups
from gangline.agents.runner import Runner
from gangline.core.errors import ConfigError
from gangline.core.nodes import check_name, check_slots
from gangline.core.nodewire import JoinIn, NodeHello
from gangline.core.profiles import CliKind, RunnerSettings, SandboxMode
from gangline.nodes.client import NodeClient
from gangline.nodes.worker import LEASE_WAIT_S, Node
from gangline.pipeline.rooms import Rooms
from gangline.project.paths import ProjectPaths

STATE_FILE = ".gangline/node.json"  # in the node's home; .gangline/ (with the run logs) is hidden from its agents


@dataclass(frozen=True)
class NodeOptions:
    """What ``gangline node`` was told; ``servers`` and ``name`` may come from the home's node.json instead."""

    home: Path
    servers: tuple[str, ...] = ()
    token: str | None = None
    name: str | None = None
    labels: tuple[str, ...] = ()
    slots: tuple[str, ...] = ()  # "coder=2", "qa=1"
    clis: tuple[str, ...] = ()  # declared CLI kinds; none: those found on PATH
    sandbox: SandboxMode = SandboxMode.AUTO
    lease_wait_s: float = LEASE_WAIT_S


def parse_slots(given: tuple[str, ...]) -> dict[str, int]:
    """``("coder=2", "qa=1")`` as slots per role; one coder slot when none are given."""
    slots: dict[str, int] = {}
    for entry in given:
        role, sep, count = entry.partition("=")
        if not sep or not count.strip().isdigit():
            raise ConfigError("--slots", f"expected ROLE=COUNT such as coder=2, got {entry!r}")
        slots[role.strip()] = int(count)
    return check_slots(slots or {"coder": 1})


def find_clis(declared: tuple[str, ...], env: dict[str, str]) -> dict[str, str]:
    """The agent CLIs this machine can run, kind -> version: the declared kinds, else every one found on PATH."""
    kinds = [kind.value for kind in CliKind]
    for kind in declared:
        if kind not in kinds:
            raise ConfigError("--cli", f"expected one of {', '.join(kinds)}, got {kind!r}")
    found = {cli.kind.value: cli.version for cli in installed_clis(env, tuple(CliKind))}
    if not declared:
        return found
    return {kind: found.get(kind, "not found on PATH") for kind in declared}


def _state(home: Path) -> dict[str, object]:
    path = home / STATE_FILE
    if not path.exists():
        return {}
    try:
        loaded = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ConfigError(str(path), f"cannot be read as the node's state: {err}") from None
    return loaded if isinstance(loaded, dict) else {}


async def run_node(options: NodeOptions) -> str:
    """Join if given a token, then serve as a build node; returns why it stopped (drained)."""
    env = dict(os.environ)
    state = _state(options.home)
    stored = state.get("servers")
    servers = options.servers or (tuple(str(url) for url in stored) if isinstance(stored, list) else ())
    name = check_name(options.name or str(state.get("name") or os.uname().nodename.split(".")[0]), "--name")
    hello = NodeHello(labels=list(options.labels), slots=parse_slots(options.slots), clis=find_clis(options.clis, env))
    credential = state.get("credential")
    if options.token is None and not isinstance(credential, str):
        raise ConfigError("--token", f"{options.home / STATE_FILE} has no credential: join with a token from "
                          "`gangline node token` on the server")  # fmt: skip
    if options.token is None and name != state.get("name"):  # the server knows it by its credential, and that name
        raise ConfigError("--name", f"this home's node joined as {state.get('name')!r}: join again with a token "
                          f"to be {name!r}")  # fmt: skip
    # Agents a killed node left running (every process of its runs carries its home as the project).
    kill_groups(leftover_groups(options.home))
    client = NodeClient(servers, credential if isinstance(credential, str) else None)
    try:
        if options.token is not None:
            joined = await client.join(JoinIn(token=options.token, name=name, **hello.model_dump()))
            client.credential = joined.credential
            saved = {"name": joined.node, "servers": list(client.servers), "credential": joined.credential}
            write_private(options.home / STATE_FILE, json.dumps(saved, indent=2) + "\n")
        paths = ProjectPaths(options.home)  # the node's own state in <home>/.gangline, as a project's
        runner = Runner(RunnerSettings(), paths.runs_dir, env)
        rooms = Rooms(paths, options.sandbox, env)
        rooms.bwrap()  # sandbox = required where bubblewrap cannot run: refused now, not at the first run
        node = Node(name, options.home, client, runner, rooms, hello, env, options.lease_wait_s)
        return await _until_signal(node)
    finally:
        await client.aclose()


async def _until_signal(node: Node) -> str:
    """Serve until drained, or until SIGTERM or SIGINT (then its agents are stopped first)."""
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        if task is not None:
            loop.add_signal_handler(sig, task.cancel)
    try:
        return await node.serve()
    except asyncio.CancelledError:
        return f"node {node.name} stopped"
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
