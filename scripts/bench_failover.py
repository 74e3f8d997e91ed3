"""Measure a standby's takeover: the server driving a PostgreSQL database is SIGKILLed, the standby resumes.

    .venv/bin/python scripts/bench_failover.py --runs 5

Each run: a fresh project (real git, the fake agent) on a fresh database of a private PostgreSQL
cluster (tests/kits/postgres.py, PostgreSQL's default durability), `gangline serve` driving it and
`gangline serve --standby` beside it, two agent runs under way; then the driver is SIGKILLed.
Two figures from that instant: **reaped**, until the standby has closed the dead server's runs
(the first `run_finished` it writes), and **resumed**, until it has started the next agent run
(the pipeline moves again). Prints each run's figures and the medians and maxima.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from kits import pipeline_kit
from kits.pipeline_kit import Project, commit_file
from kits.postgres import Cluster, private_cluster

BOUND_S = 120.0


def serve(project: Project, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "GANGLINE_TOKEN": "failover-bench-token-0123456789"}
    command = [sys.executable, "-m", "gangline", "serve", "--port", "0", *args]
    return subprocess.Popen(command, cwd=project.root, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)


def until(holds: Callable[[], bool], what: str) -> float:
    """Poll the shared store until ``holds()`` (bounded); the monotonic time it first held."""
    deadline = time.monotonic() + BOUND_S
    while not holds():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.005)
    return time.monotonic()


def one_run(cluster: Cluster, home: Path) -> dict[str, float]:
    pipeline_kit.DATABASE_URL = cluster.database()
    project = Project(home)
    gate = home / "go"
    work = commit_file("work/{item_slug}.txt", "{item_id}\n")
    project.agent("coder", [[{"wait_for_file": str(gate), "timeout_s": 300}, *work], work])
    project.configure(concurrency={"coder": 2})
    for n in range(3):
        project.add(f"Item {n}")
    driver, standby = serve(project), None
    try:
        until(lambda: len([r for r in project.store.runs() if r.live and r.pid]) == 2, "two runs under way")
        standby = serve(project, "--standby")
        assert standby.stdout is not None
        standby.stdout.readline()  # it listens: standing by
        before = project.store.last_event_id()
        killed = time.monotonic()
        driver.send_signal(signal.SIGKILL)
        driver.wait()
        gate.touch()  # the runs the standby starts need not wait

        def newer(kind: str) -> bool:
            return any(e.kind == kind for e in project.store.events_after(before, limit=10_000))

        reaped = until(lambda: newer("run_finished"), "the dead server's runs closed")
        resumed = until(lambda: newer("run_started"), "a new run started")
        return {"reaped_s": reaped - killed, "resumed_s": resumed - killed}
    finally:
        for proc in (driver, standby):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
        project.store.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    figures = []
    with private_cluster(durable=True) as cluster:
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory(prefix="gangline-failover-") as tmp:
                figures.append(one_run(cluster, Path(tmp)))
            print(json.dumps({k: round(v, 3) for k, v in figures[-1].items()}), flush=True)
    for key in ("reaped_s", "resumed_s"):
        taken = [f[key] for f in figures]
        print(f"{key}: median {statistics.median(taken):.2f} s, max {max(taken):.2f} s over {len(taken)} runs")


if __name__ == "__main__":
    main()
