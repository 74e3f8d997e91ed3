"""``gangline bench nodes``: items per minute with 1, 2, 4 build nodes against the server alone, and two latencies.

Each configuration is a fresh project (real git, the fake agent, whose coder takes
``agent_s`` seconds and then commits) served by a real ``gangline serve`` process; its nodes are
real ``gangline node`` processes with one coder slot each, on this machine. *Alone*: the server
runs one coder itself (``[concurrency] coder = 1``) and has no nodes; *N nodes*: it runs none
(``server_agents = false``). Items per minute count from the items' creation to the last one
done. **Lease to spawn**: a run's ``run_leased`` event to its agent's process started on the
node. **Upload**: an agent's line, as the node's runner read it from the PTY, to a subscriber of
the server's ``/api/runs/<id>/events`` stream. The configurations are interleaved, round after
round; the medians are reported.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from gangline.agents.runlog import replay
from gangline.bench.pipeline import Spread
from gangline.cli.client import parse_sse
from gangline.core.events import ProcessStarted
from gangline.project.paths import ProjectPaths
from gangline.repo.git import GANGLINE_COMMITTER, git_env
from gangline.store import open_sqlite

TOKEN = "bench-nodes-token-0123456789abcdef"
BOUND_S = 600.0
UPLOAD_LINES = 200


@dataclass(frozen=True)
class Served:
    """A bench project and its server process."""

    root: Path
    url: str
    server: subprocess.Popen[bytes]
    nodes: list[subprocess.Popen[bytes]]


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", *GANGLINE_COMMITTER, *args], cwd=root, env=git_env(os.environ), check=True,
                   capture_output=True)  # fmt: skip


def _project(home: Path, agent_steps: list[dict[str, object]], settings: str) -> Path:
    root = home / "repo"
    root.mkdir(parents=True)
    _git(root, "init", "-q", "-b", "main")
    (root / ".gitignore").write_text(".gangline/\n")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "initial")
    scenario = home / "coder.json"
    scenario.write_text(json.dumps({"attempts": [agent_steps]}))
    agent = f'[[agent]]\nname = "coder"\ncli = "fake"\nextra_args = ["--scenario", "{scenario}"]\n'
    (root / ".gangline").mkdir()
    (root / ".gangline" / "project.toml").write_text(f'sandbox = "off"\n{settings}\n{agent}')
    return root


def _env(path_first: str) -> dict[str, str]:
    return {**os.environ, "GANGLINE_TOKEN": TOKEN, "PATH": f"{path_first}{os.pathsep}{os.environ.get('PATH', '')}"}


def _serve(root: Path, nodes: int) -> Served:
    scripts = str(Path(sys.executable).parent)
    server = subprocess.Popen([sys.executable, "-m", "gangline", "serve", "--port", "0"], cwd=root, env=_env(scripts),
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)  # fmt: skip
    assert server.stdout is not None
    line = server.stdout.readline().decode()
    if not line.startswith("gangline serving "):
        server.kill()
        raise RuntimeError(f"the server did not start: {line!r}")
    url = line.split()[2].rstrip(":")
    started = []
    headers = {"Authorization": f"Bearer {TOKEN}"}
    for n in range(nodes):
        token = httpx.post(f"{url}/api/nodes/token", headers=headers, timeout=30).json()["token"]
        home = root.parent / f"node-{n}"
        command = [sys.executable, "-m", "gangline", "node", "--server", url, "--token", token, "--home", str(home),
                   "--name", f"n{n}", "--cli", "fake"]  # fmt: skip
        started.append(subprocess.Popen(command, env=_env(scripts), stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL))  # fmt: skip
    return Served(root, url, server, started)


def _until(holds: Callable[[], bool], what: str) -> float:
    deadline = time.monotonic() + BOUND_S
    while not holds():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.01)  # another process makes it true: poll the shared store, bounded
    return time.time()


def _stop(served: Served) -> None:
    for proc in (*served.nodes, served.server):
        proc.terminate()
    for proc in (*served.nodes, served.server):
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _throughput(home: Path, nodes: int, items: int, agent_s: float) -> tuple[float, list[float]]:
    """Items per minute through one configuration, and each leased run's lease-to-spawn seconds."""
    steps: list[dict[str, object]] = [
        {"sleep": agent_s}, {"write": "f/{item_id}.txt", "text": "{item_id}\n"}, {"commit": "item {item_id}"}
    ]  # fmt: skip
    local = "[concurrency]\ncoder = 1\n" if nodes == 0 else "[nodes]\nserver_agents = false\n"
    served = _serve(_project(home, steps, local), nodes)
    store = open_sqlite(ProjectPaths(served.root).db_file)
    try:
        _until(lambda: len(store.nodes()) == nodes, "the nodes joined")
        headers = {"Authorization": f"Bearer {TOKEN}"}
        started = time.time()
        for n in range(items):
            httpx.post(f"{served.url}/api/items", json={"title": f"Item {n}"}, headers=headers, timeout=30)
        done = _until(lambda: sum(i.stage.value == "done" for i in store.list_items()) == items, "every item done")
        leased = {e.run_id: e.at for e in store.events_after(0, limit=100_000) if e.kind == "run_leased"}
        spawns = []
        for run in store.runs():
            first = next((r for r in replay(Path(run.log_path)) if isinstance(r.event, ProcessStarted)), None)
            if run.id in leased and first is not None:
                spawns.append(first.ts - leased[run.id])
        return items / (done - started) * 60, spawns
    finally:
        store.close()
        _stop(served)


def _upload(home: Path) -> list[float]:
    """One node, one agent printing a line every 10 ms: each line's PTY read to an SSE subscriber of the server."""
    gate = home / "go"
    lines: list[dict[str, object]] = []
    for n in range(UPLOAD_LINES):
        lines += [{"say": f"line {n}"}, {"sleep": 0.01}]
    steps: list[dict[str, object]] = [
        {"wait_for_file": str(gate), "timeout_s": 300}, *lines, {"write": "f.txt", "text": "x\n"}, {"commit": "x"}
    ]  # fmt: skip
    served = _serve(_project(home, steps, "[nodes]\nserver_agents = false\n"), 1)
    store = open_sqlite(ProjectPaths(served.root).db_file)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    try:
        _until(lambda: len(store.nodes()) == 1, "the node joined")
        httpx.post(f"{served.url}/api/items", json={"title": "Stream"}, headers=headers, timeout=30)
        _until(lambda: any(r.node_id is not None for r in store.runs()), "the node leased the run")
        run_id = store.runs()[0].id
        latencies: list[float] = []
        with httpx.stream("GET", f"{served.url}/api/runs/{run_id}/events", headers=headers, timeout=60) as answer:
            gate.touch()
            for message in parse_sse(answer.iter_lines()):
                if message.event == "end":
                    break
                record = json.loads(message.data)
                if str(record.get("event", {}).get("text", "")).startswith("line "):
                    latencies.append(time.time() - float(record["ts"]))
        return latencies
    finally:
        store.close()
        _stop(served)


@dataclass(frozen=True)
class NodesFigures:
    items_per_min: Mapping[str, float]  # "alone", "1 node", "2 nodes", ...: medians over the rounds
    lease_to_spawn: Spread
    upload: Spread
    rounds: int
    agent_s: float
    items: int

    def as_dict(self) -> dict[str, object]:
        rates = self.items_per_min
        one = rates.get("1 node")
        return {
            "items": self.items, "agent_s": self.agent_s, "rounds": self.rounds,
            "items_per_min": {name: round(value, 1) for name, value in rates.items()},
            "vs_alone": {name: round(value / rates["alone"], 2) for name, value in rates.items()},
            "vs_one_node": {name: round(value / one, 2) for name, value in rates.items()} if one else {},
            **self.lease_to_spawn.as_dict("lease_to_spawn"), **self.upload.as_dict("upload"),
        }  # fmt: skip


def bench_nodes(counts: Sequence[int], items: int, agent_s: float, rounds: int) -> NodesFigures:
    """Every configuration, interleaved round after round; then the upload latency."""
    per: dict[str, list[float]] = {}
    spawns: list[float] = []
    with tempfile.TemporaryDirectory(prefix="gangline-bench-nodes-") as tmp:
        for r in range(rounds):
            for nodes in (0, *counts):
                name = "alone" if nodes == 0 else f"{nodes} node{'s' if nodes > 1 else ''}"
                rate, leased = _throughput(Path(tmp) / f"{r}-{nodes}", nodes, items, agent_s)
                per.setdefault(name, []).append(rate)
                spawns += leased
        upload = _upload(Path(tmp) / "upload")
    medians = {name: statistics.median(rates) for name, rates in per.items()}
    return NodesFigures(medians, Spread.of(spawns), Spread.of(upload), rounds, agent_s, items)
