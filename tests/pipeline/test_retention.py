"""Disk retention on real repositories with fake agents: old logs compressed (and still read), then removed with old
gate output; done items' worktrees pruned with age or to fit the size bound; what it takes, said by doctor.

Time is moved by giving a second orchestrator a clock days ahead; its retention sweeps once, on demand.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from gangline.core.stages import Stage
from gangline.pipeline.orchestrator import Orchestrator
from gangline.pipeline.views import Views
from kits.helpers import cli_env
from kits.pipeline_kit import Project, commit_file, git
from kits.servers import TOKEN, kill, serve

DAY = 86400.0


@pytest.fixture
def project(tmp_path: Path) -> Project:
    made = Project(tmp_path)
    (made.root / ".gitignore").write_text(".gangline/\ndeps/\n")
    git(made.root, "add", "-A")
    git(made.root, "commit", "-q", "-m", "ignore deps")
    return made


def later(project: Project, days: float) -> Orchestrator:
    """An orchestrator of the project whose clock is ``days`` ahead (it does not serve: its retention is swept)."""
    return project.orchestrator(clock=lambda: time.time() + days * DAY)


def gangline(project: Project, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gangline", *args], cwd=project.root, env=cli_env(), text=True,
                          capture_output=True, timeout=120)  # fmt: skip


async def test_old_logs_are_compressed_and_still_read_then_removed_with_old_gate_output(project: Project) -> None:
    project.agent("coder", [commit_file("a.txt", "a\n")])
    project.configure(gates=[("says", "echo all 4 checks pass")])
    item = project.add("Add a")
    await project.run_until_idle()
    [run] = project.store.runs(item.id)
    log = Path(run.log_path)
    before = Views(project.store).log_page(run.id).records
    assert before and log.exists()

    disk = await later(project, 3).retention.sweep()
    assert disk.last_sweep is not None and disk.last_sweep.compressed_logs == 1
    assert not log.exists() and log.with_name(log.name + ".gz").exists()
    assert disk.compressed_logs == 1 and disk.run_logs == 1
    assert Views(project.store).log_page(run.id).records == before  # read from the compressed log, the same
    shown = gangline(project, "logs", run.id)
    assert shown.returncode == 0 and "a.txt" in shown.stdout, shown

    disk = await later(project, 31).retention.sweep()
    assert disk.last_sweep is not None and disk.last_sweep.deleted_logs == 1 and disk.run_logs == 0
    assert disk.last_sweep.cleared_outputs == len(project.store.gate_results(item.id)) > 0
    assert all(g.output == "[output removed by the [retention] settings]" for g in project.store.gate_results(item.id))
    assert Views(project.store).log_page(run.id).records == []
    gone = gangline(project, "logs", run.id)
    assert (
        gone.returncode == 4
        and "it is gone: an ended run's log is removed after [retention] delete_after_s"
        in " ".join(gone.stderr.split())
    ), gone
    assert project.store.get_run(run.id).outcome is not None  # the run's row, its outcome and cost stay


async def test_a_done_items_worktree_is_pruned_once_old_and_a_dirty_one_is_kept_and_said_so(project: Project) -> None:
    project.agent("coder", [commit_file("{item_slug}.txt", "{item_id}\n")])
    project.configure(archive_after_s=90 * DAY)  # archiving would prune it: here retention does
    first, second = project.add("Add a"), project.add("Add b", depends_on=[1])
    await project.run_until_idle()
    assert project.stage(first.id) is project.stage(second.id) is Stage.DONE
    (project.paths.worktrees_dir / f"{second.id}-add-b" / "notes.txt").write_text("a person's notes\n")

    disk = await later(project, 3).retention.sweep()
    assert disk.last_sweep is not None and disk.last_sweep.pruned_worktrees == 1
    assert not (project.paths.worktrees_dir / f"{first.id}-add-a").exists()
    assert (project.paths.worktrees_dir / f"{second.id}-add-b" / "notes.txt").exists()
    [kept] = disk.last_sweep.kept
    assert kept.startswith(f"#{second.id}: ") and "notes.txt" in kept
    events = [(e.item_id, e.kind) for e in project.store.events_after() if e.kind.startswith("worktree_")]
    assert (first.id, "worktree_pruned") in events and (second.id, "worktree_kept") in events
    again = await later(project, 3).retention.sweep()
    assert again.last_sweep is not None and again.last_sweep.kept == [f"#{second.id}: {kept.split(': ', 1)[1]}"]


async def test_over_the_size_bound_the_oldest_done_items_logs_then_worktrees_go_until_it_fits(
    project: Project,
) -> None:
    install = "mkdir -p deps && head -c 2000000 /dev/urandom > deps/blob"  # 2 MB each worktree, ignored by git
    project.agent("coder", [commit_file("{item_slug}.txt", "{item_id}\n")])
    project.configure(archive_after_s=90 * DAY, retention={"max_bytes": "5MiB"},
                      tables=f'[hooks]\nafter_create = "{install}"\n')  # fmt: skip
    items = [project.add(title) for title in ("Add a", "Add b", "Add c")]
    await project.run_until_idle()
    assert all(project.stage(item.id) is Stage.DONE for item in items)
    orch = later(project, 0)
    before = await orch.retention.measure()
    assert before.total_bytes > before.limit_bytes == 5 * 2**20

    after = await orch.retention.sweep()
    assert after.total_bytes <= after.limit_bytes
    assert after.last_sweep is not None and after.last_sweep.deleted_logs == 3  # the done items' logs went first
    left = sorted(p.name for p in project.paths.worktrees_dir.iterdir())
    assert left == [f"{item.id}-{item.slug}" for item in items[-len(left) :]]  # the oldest pruned first
    assert after.last_sweep.pruned_worktrees == 3 - len(left) >= 1
    assert Views(project.store, orch.live).status().disk == after  # GET /api/status and gangline status say it


async def test_status_and_doctor_say_what_the_runs_take_against_the_bound(project: Project) -> None:
    project.agent("coder", [commit_file("a.txt", "a\n")])
    project.configure(retention={"max_bytes": "1GiB"})
    project.add("Add a")
    await project.run_until_idle()
    done = gangline(project, "doctor", "--json", "--port", "0")
    [check] = [c for c in json.loads(done.stdout) if c["name"] == "retention"]
    assert check["ok"] is True
    assert check["detail"].startswith("run logs ") and "(1, 0 compressed), worktrees " in check["detail"]
    assert check["detail"].endswith(" of the 1.0 GiB [retention] allows")

    server, url = await serve(project)  # its first sweep comes a few seconds after it starts
    try:
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
            disk = await _swept(client)
        assert disk["run_logs"] == 1 and disk["limit_bytes"] == 2**30 and disk["last_sweep"]["deleted_logs"] == 0
        shown = subprocess.run([sys.executable, "-m", "gangline", "status"], cwd=project.root, text=True,
                               capture_output=True, env=cli_env(GANGLINE_TOKEN=TOKEN), timeout=60)  # fmt: skip
        said = " ".join(shown.stdout.split())
        assert "Disk: run logs " in said and "of the 1.0 GiB [retention] allows" in said, shown
    finally:
        await kill(server)


async def _swept(client: httpx.AsyncClient, bound_s: float = 60) -> dict[str, Any]:
    """The server's status once its first retention sweep has measured the disk, bounded."""
    deadline = time.monotonic() + bound_s
    while (disk := (await client.get("/api/status")).json()["disk"]) is None:
        assert time.monotonic() < deadline, "no retention sweep within the bound"
        await asyncio.sleep(0.2)  # the sweep is the server's, in another process: asked again, bounded
    return dict(disk)
