"""``gangline bench pipeline``: items through the whole pipeline with fake agents, and the scheduler's handoff."""

from __future__ import annotations

import json
import math
import resource
import statistics
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from gangline.agents.runlog import replay
from gangline.core.errors import ConfigError
from gangline.core.events import ProcessStarted, RunFinished
from gangline.core.items import Criterion, ItemDraft
from gangline.core.profiles import Role
from gangline.core.records import EventRow, RunRow
from gangline.core.stages import Stage, Trigger
from gangline.pipeline.orchestrator import Orchestrator
from gangline.project.config import ProjectConfig, load_project_text
from gangline.project.paths import ProjectPaths
from gangline.repo.git import GANGLINE_COMMITTER, git_env
from gangline.store import Store, open_sqlite

TICK_SAMPLES = 50
ACTOR = "bench"
_SETTINGS = """qa_mode = "agent"

[concurrency]
coder = 2
qa = 2

[[gate]]
name = "trivial"
command = "true"
"""
_CODER_STEPS = [
    {"say": "Adding f/{item_id}.txt."},
    {"write": "f/{item_id}.txt", "text": "item {item_id}\n"},
    {"commit": "Add f/{item_id}.txt"},
]
_QA_STEPS = [{"final_json": {"verdict": "pass", "criteria": [], "summary": "ok"}}]


@dataclass(frozen=True)
class Spread:
    """Nearest-rank percentiles of a sample, in milliseconds (with 100 or fewer values p99 is the max)."""

    p50_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Spread:
        ordered = sorted(seconds)

        def rank(q: float) -> float:
            return ordered[max(0, math.ceil(q * len(ordered)) - 1)] * 1000

        return cls(rank(0.50), rank(0.99), ordered[-1] * 1000)

    def as_dict(self, name: str) -> dict[str, float | int]:
        values = {"p50": self.p50_ms, "p99": self.p99_ms, "max": self.max_ms}
        return {f"{name}_ms_{key}": round(value, 1) for key, value in values.items()}


@dataclass(frozen=True)
class Handoff:
    """One item's coder exit -> QA agent spawned; the gates and git work between the two are included."""

    from_exit_s: float  # from the coder's last output (it exits right after printing its result)
    from_logged_end_s: float  # from the coder run's end logged (RunFinished), after the runner reaped it
    queued: bool  # every QA slot was taken when the item reached QA: part of this is queueing


@dataclass(frozen=True)
class PipelineFigures:
    """What ``gangline bench pipeline`` prints (``as_dict``); BENCHMARKS.md says what each figure means."""

    items: int
    backlog: int
    seconds: float  # the first item's start to the last item's done
    handoffs: tuple[Handoff, ...]
    tick_s_empty: float  # median Orchestrator.tick() with no items
    tick_s_backlog: float  # ... with ``backlog`` items waiting in the backlog
    peak_rss_mb: float

    @property
    def items_per_min(self) -> float:
        return self.items / self.seconds * 60

    def as_dict(self) -> dict[str, float | int]:
        figures: dict[str, float | int] = {
            "items": self.items,
            "backlog": self.backlog,
            "seconds": round(self.seconds, 3),
            "items_per_min": round(self.items_per_min, 1),
        }
        figures |= Spread.of([h.from_exit_s for h in self.handoffs]).as_dict("exit_to_qa_spawn")
        figures |= Spread.of([h.from_logged_end_s for h in self.handoffs]).as_dict("logged_end_to_qa_spawn")
        unqueued = [h.from_exit_s for h in self.handoffs if not h.queued]
        if unqueued:  # the scheduler's own latency: handoffs that found a QA slot free
            figures |= Spread.of(unqueued).as_dict("unqueued_exit_to_qa_spawn")
        return figures | {
            "qa_slot_waits": len(self.handoffs) - len(unqueued),
            "tick_ms_empty": round(self.tick_s_empty * 1000, 3),
            "tick_ms_backlog": round(self.tick_s_backlog * 1000, 3),
            "tick_backlog_ratio": round(self.tick_s_backlog / max(self.tick_s_empty, 1e-9), 2),
            "peak_rss_mb": round(self.peak_rss_mb, 1),
        }


async def pipeline(
    items: int, backlog: int, env: Mapping[str, str], workdir: Path | None = None, sandbox: str = "auto"
) -> PipelineFigures:
    """Run ``items`` items backlog -> coding -> qa -> merge -> done with fake agents and one ``true`` gate.

    Every item takes two agent runs (coder, then a QA agent), so each has one handoff to time.
    ``backlog`` more items sit in the backlog all along, unable to move (they depend on a frozen
    item); ``Orchestrator.tick()`` is timed before and after they are added. ``workdir`` (an
    existing directory) keeps the repository, database and run logs for inspection.
    """
    if items < 1 or backlog < 0:
        raise ConfigError("bench pipeline", f"expected items >= 1 and backlog >= 0, got {items} and {backlog}")
    if workdir is not None:
        return await _pipeline_in(workdir, items, backlog, env, sandbox)
    with tempfile.TemporaryDirectory(prefix="gangline-bench-") as tmp:
        return await _pipeline_in(Path(tmp), items, backlog, env, sandbox)


async def _pipeline_in(work: Path, items: int, backlog: int, env: Mapping[str, str], sandbox: str) -> PipelineFigures:
    paths = bench_repo(work / "repo", env)
    config = _bench_config(paths, work, env, sandbox)
    store = open_sqlite(paths.db_file)
    try:
        idle = Orchestrator(paths, config, store, env)  # never serves: its ticks only plan
        tick_empty = _median_tick_s(idle)
        _add_waiting(store, backlog)
        tick_backlog = _median_tick_s(idle)
        ids = [store.create_item(ItemDraft(title=f"bench item {n}"), ACTOR).id for n in range(1, items + 1)]
        await Orchestrator(paths, config, store, env).serve(until_idle=True)
        _check_done(store, ids)
        moves = _transitions(store, set(ids))
        handoffs = _handoffs(store, ids, moves, config.concurrency.qa)
    finally:
        store.close()
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return PipelineFigures(items, backlog, _wall_s(moves), handoffs, tick_empty, tick_backlog, peak_kb / 1024)


def bench_repo(root: Path, env: Mapping[str, str]) -> ProjectPaths:
    root.mkdir(parents=True)
    (root / "README.md").write_text("# gangline pipeline benchmark\n")
    (root / ".gitignore").write_text(".gangline/\n")
    for args in (("init", "-q", "-b", "main"), ("add", "-A"), (*GANGLINE_COMMITTER, "commit", "-q", "-m", "initial")):
        subprocess.run(["git", *args], cwd=root, env=git_env(env), check=True, capture_output=True)
    return ProjectPaths(root)


def _bench_config(paths: ProjectPaths, work: Path, env: Mapping[str, str], sandbox: str) -> ProjectConfig:
    tables = [f"sandbox = {json.dumps(sandbox)}", _SETTINGS]
    for role, steps in ((Role.CODER, _CODER_STEPS), (Role.QA, _QA_STEPS)):
        scenario = work / f"{role.value}.json"
        scenario.write_text(json.dumps({"attempts": [steps]}))
        args = ["--scenario", str(scenario), "--scenario-state", str(work / f"{role.value}.state")]
        tables.append(f'[[agent]]\nname = "{role.value}"\nrole = "{role.value}"\ncli = "fake"\n'
                      f"extra_args = {json.dumps(args)}\n")  # fmt: skip
    text = "\n".join(tables)
    paths.state_dir.mkdir()
    paths.config_file.write_text(text)
    return load_project_text(text, str(paths.config_file), env)


def _add_waiting(store: Store, count: int) -> None:
    """``count`` ordinary backlog items that wait on a frozen one, so no tick may start them."""
    if count <= 0:
        return
    anchor = store.create_item(ItemDraft(title="bench anchor", frozen=True), ACTOR).id
    body = "A backlog item the benchmark keeps waiting.\n" * 8
    for n in range(1, count + 1):
        draft = ItemDraft(title=f"waiting item {n}", body=body, criteria=(Criterion(text="it works"),),
                          depends_on=(anchor,))  # fmt: skip
        store.create_item(draft, ACTOR)


def _median_tick_s(orch: Orchestrator) -> float:
    samples = []
    for _ in range(TICK_SAMPLES):
        started = time.perf_counter()
        planned = orch.tick()
        samples.append(time.perf_counter() - started)
        if planned.jobs:  # it would have launched jobs: the figure would not be a plain tick
            raise RuntimeError(f"an idle tick planned {planned.jobs}; the waiting items must not move")
    return statistics.median(samples)


def _check_done(store: Store, ids: Sequence[int]) -> None:
    stuck = [item for item in map(store.get_item, ids) if item.stage is not Stage.DONE]
    if stuck:
        shown = "; ".join(f"{item.id}: {item.state.describe()}" for item in stuck[:5])
        raise RuntimeError(f"{len(stuck)} of {len(ids)} benchmark items did not reach done: {shown}")


def _transitions(store: Store, ids: set[int]) -> list[EventRow]:
    """The stage changes of ``ids``, oldest first, from the store's event log."""
    found: list[EventRow] = []
    after = 0
    while batch := store.events_after(after, limit=1000):
        found += [event for event in batch if event.item_id in ids and event.kind == "transition"]
        after = batch[-1].id
    return found


def _wall_s(moves: Sequence[EventRow]) -> float:
    """From the first start transition to the last transition into done."""
    started = [move.at for move in moves if move.trigger == Trigger.START.value]
    done = [move.at for move in moves if move.to_stage == Stage.DONE.value]
    return max(done) - min(started)


def _qa_spans(moves: Sequence[EventRow]) -> dict[int, tuple[float, float]]:
    """When each item entered and left the QA stage."""
    entered = {move.item_id: move.at for move in moves if move.to_stage == Stage.QA.value and move.item_id}
    left = {move.item_id: move.at for move in moves if move.from_stage == Stage.QA.value and move.item_id}
    return {item_id: (at, left.get(item_id, math.inf)) for item_id, at in entered.items()}


def _handoffs(store: Store, ids: Sequence[int], moves: Sequence[EventRow], qa_slots: int) -> tuple[Handoff, ...]:
    runs = store.runs()
    spans = _qa_spans(moves)
    found = []
    for item_id in ids:
        coder, qa = _coder_and_qa(runs, item_id)
        last_output, logged_end = _run_end(Path(coder.log_path))
        spawned = next(r.ts for r in replay(Path(qa.log_path)) if isinstance(r.event, ProcessStarted))
        # Every item in QA holds a QA slot or waits for one: with ``qa_slots`` others there, this one queued.
        ready = spans[item_id][0]
        others = sum(1 for other, (a, b) in spans.items() if other != item_id and a <= ready < b)
        found.append(Handoff(spawned - last_output, spawned - logged_end, others >= qa_slots))
    return tuple(found)


def _coder_and_qa(runs: Sequence[RunRow], item_id: int) -> tuple[RunRow, RunRow]:
    coder = [run for run in runs if run.item_id == item_id and run.role is Role.CODER]
    qa = [run for run in runs if run.item_id == item_id and run.role is Role.QA]
    if len(coder) != 1 or len(qa) != 1:
        raise RuntimeError(f"item {item_id} took {len(coder)} coder and {len(qa)} QA runs; the scenarios make one each")
    return coder[0], qa[0]


def _run_end(log_path: Path) -> tuple[float, float]:
    """When the agent's last output was read, and when the run's end was logged.

    The agent prints its result and exits at once, so its last output is its exit give or take
    the interpreter's teardown; ``RunFinished`` is written only after the runner has reaped the
    process group and drained the PTY, work that belongs to the handoff.
    """
    records = list(replay(log_path))
    if len(records) < 2 or not isinstance(records[-1].event, RunFinished):
        raise RuntimeError(f"{log_path} does not end with a run_finished record")
    return records[-2].ts, records[-1].ts
