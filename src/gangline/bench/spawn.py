"""``gangline bench spawn``: what the sandbox adds to starting an agent, interleaved with and without it.

One figure per run: spawn (the ``process_started`` record, written just after the PTY child
exists) to the first event parsed from the fake CLI's output. Runs alternate with and without
the sandbox so that a busy machine slows both alike. The room's own cost (making the git
quarantine before, taking it in after) is timed apart.
"""

from __future__ import annotations

import statistics
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from gangline.agents.runlog import replay
from gangline.agents.runner import Runner, RunRequest
from gangline.core.profiles import AgentProfile, CliKind, RunnerSettings, SandboxMode
from gangline.fake.cli import shipped_transcript
from gangline.pipeline.rooms import Rooms
from gangline.project.paths import ProjectPaths
from gangline.repo.git import GANGLINE_COMMITTER, git_env
from gangline.repo.worktrees import Worktrees


@dataclass(frozen=True)
class SpawnFigures:
    runs: int
    plain_ms: list[float]
    sandboxed_ms: list[float]
    room_ms: list[float]  # open + close of the room, around each sandboxed run

    def as_dict(self) -> dict[str, object]:
        def summary(samples: list[float]) -> dict[str, float]:
            ordered = sorted(samples)
            p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
            return {"median_ms": round(statistics.median(ordered), 2), "p99_ms": round(p99, 2)}

        added = statistics.median(self.sandboxed_ms) - statistics.median(self.plain_ms)
        return {
            "runs": self.runs,
            "without_sandbox": summary(self.plain_ms),
            "with_sandbox": summary(self.sandboxed_ms),
            "added_median_ms": round(added, 2),
            "room_open_close": summary(self.room_ms),
        }


def _first_event_ms(log: Path) -> float:
    records = list(replay(log))
    return (records[1].ts - records[0].ts) * 1000  # process_started, then the first line's event


async def spawn(runs: int, env: Mapping[str, str]) -> SpawnFigures:
    with tempfile.TemporaryDirectory(prefix="gangline-bench-spawn-") as tmp:
        root = Path(tmp) / "repo"
        root.mkdir()
        for args in (("init", "-q", "-b", "main"), (*GANGLINE_COMMITTER, "commit", "-q", "--allow-empty", "-m", "i")):
            subprocess.run(["git", *args], cwd=root, env=git_env(env), check=True, capture_output=True)
        paths = ProjectPaths(root)
        paths.runs_dir.mkdir(parents=True)
        paths.hooks_dir.mkdir(parents=True)
        tree = await Worktrees(root, paths.worktrees_dir, paths.merge_dir, "main").ensure(1, "bench")
        profile = AgentProfile(name="bench", cli=CliKind.FAKE, extra_args=("--transcript", str(shipped_transcript())))
        runner = Runner(RunnerSettings(), paths.runs_dir, env)
        rooms = Rooms(paths, SandboxMode.REQUIRED, env)
        plain: list[float] = []
        sandboxed: list[float] = []
        room_ms: list[float] = []
        for n in range(runs):
            await runner.run(RunRequest(f"plain-{n}", profile, "bench", tree))
            plain.append(_first_event_ms(runner.log_path(f"plain-{n}")))
            started = time.perf_counter()
            opened = await rooms.open(f"boxed-{n}", profile, tree, "1-bench")
            room_ms.append((time.perf_counter() - started) * 1000)
            assert opened is not None
            request = RunRequest(f"boxed-{n}", profile, "bench", tree, room=opened.room, bwrap=opened.bwrap)
            await runner.run(request)
            started = time.perf_counter()
            await rooms.close(opened)
            room_ms[-1] += (time.perf_counter() - started) * 1000
            sandboxed.append(_first_event_ms(runner.log_path(f"boxed-{n}")))
        return SpawnFigures(runs, plain, sandboxed, room_ms)
