"""The pipeline benchmark: it drives real items to done and reports figures that make sense (no timing thresholds)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from gangline.bench.pipeline import pipeline
from gangline.core.errors import ConfigError


async def test_pipeline_benchmark_takes_every_item_to_done_and_reports_sane_figures(tmp_path: Path) -> None:
    figures = await pipeline(items=4, backlog=20, env=dict(os.environ), workdir=tmp_path)

    shown = json.loads(json.dumps(figures.as_dict()))
    assert shown["items"] == 4 and shown["backlog"] == 20
    assert shown["seconds"] > 0 and shown["items_per_min"] > 0
    assert len(figures.handoffs) == 4
    for name in ("exit_to_qa_spawn", "logged_end_to_qa_spawn"):
        assert 0 < shown[f"{name}_ms_p50"] <= shown[f"{name}_ms_p99"] <= shown[f"{name}_ms_max"]
    assert shown["logged_end_to_qa_spawn_ms_max"] <= shown["exit_to_qa_spawn_ms_max"]
    assert 0 <= shown["qa_slot_waits"] <= 4
    assert shown["tick_ms_empty"] > 0 and shown["tick_ms_backlog"] > 0 and shown["tick_backlog_ratio"] > 0
    assert shown["peak_rss_mb"] > 0


async def test_pipeline_benchmark_merges_each_item_onto_main_and_never_starts_the_waiting_backlog(
    tmp_path: Path,
) -> None:
    await pipeline(items=2, backlog=3, env=dict(os.environ), workdir=tmp_path)

    # Item 1 is the frozen anchor, 2-4 wait on it, 5 and 6 are the measured items.
    repo = tmp_path / "repo"
    files = subprocess.run(["git", "ls-tree", "-r", "--name-only", "main"], cwd=repo, capture_output=True, text=True)
    assert sorted(files.stdout.split()) == [".gitignore", "README.md", "f/5.txt", "f/6.txt"]
    worktrees = sorted(path.name for path in (repo / ".gangline" / "worktrees").iterdir())
    assert worktrees == ["5-bench-item-1", "6-bench-item-2"]


async def test_pipeline_benchmark_refuses_zero_items(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="items >= 1"):
        await pipeline(items=0, backlog=0, env=dict(os.environ), workdir=tmp_path)
