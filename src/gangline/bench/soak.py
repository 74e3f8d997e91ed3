"""``gangline bench soak``: many fake agents streaming and items flowing for minutes, sampled.

The real server (the ASGI app on uvicorn over loopback, the orchestrator in its lifespan) runs
``agents`` coders at once on a backlog kept at ``backlog`` items; each fake coder streams for
``stream_s`` seconds, commits a file and exits; the gates pass and the merge lands it. One client follows
the live pipeline stream (``/api/events``) over real HTTP and counts what it is delivered. Every
``sample_s`` the benchmark samples events emitted (the store's last id) and delivered, the
process's RSS, open file descriptors and CPU, running agents and items done. At the end it
stops adding work, waits (bounded) for the client to reach the last event, and counts as lost
any it did not; the events of the shutdown that follows are not counted. It fails if an event
was lost or the stream skipped one, and reports whether RSS and fds stayed flat (the first
quarter of the samples against the last, within RSS_GROWTH_BOUND and FD_GROWTH_BOUND).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from gangline.bench.fanout import MAX_AGENTS, cpu_s
from gangline.bench.pipeline import ACTOR, bench_repo
from gangline.core.errors import ConfigError
from gangline.core.items import ItemDraft
from gangline.core.stages import Stage
from gangline.pipeline.orchestrator import Orchestrator
from gangline.project.config import ProjectConfig, load_project_text
from gangline.project.paths import ProjectPaths
from gangline.server.state import state_of
from gangline.store import Store, open_sqlite

FD_GROWTH_BOUND = 1.25  # the last quarter's median fds over the first's, past which the run fails
RSS_GROWTH_BOUND = 1.10  # the same for RSS
# How long each fake coder streams before it commits, by default: 64 of them then start and
# finish about one a second, which two cores sustain (with 4 s, 64 would need 16 a second).
STREAM_S = 60.0


@dataclass(frozen=True)
class Sample:
    at_s: float
    emitted: int  # the last pipeline event id
    delivered: int  # the last id the stream client received
    rss_mb: float
    fds: int
    cpu_pct: float  # this process (server, orchestrator and the stream client) since the last sample
    running: int
    done: int


@dataclass(frozen=True)
class SoakFigures:
    agents: int
    minutes: float
    backlog: int
    stream_s: float
    samples: tuple[Sample, ...]
    emitted: int
    delivered: int
    lost: int
    rss_mb_first_quarter: float
    rss_mb_last_quarter: float
    fds_first_quarter: float
    fds_last_quarter: float
    items_done: int
    agent_runs: int

    @property
    def fds_flat(self) -> bool:
        return self.fds_last_quarter <= self.fds_first_quarter * FD_GROWTH_BOUND

    @property
    def rss_flat(self) -> bool:
        return self.rss_mb_last_quarter <= self.rss_mb_first_quarter * RSS_GROWTH_BOUND

    def as_dict(self) -> dict[str, object]:
        figures = {k: v for k, v in asdict(self).items() if k != "samples"}
        flat = {"fds_flat": self.fds_flat, "rss_flat": self.rss_flat}
        return figures | flat | {"samples": [asdict(s) for s in self.samples]}


async def soak(
    agents: int,
    minutes: float,
    backlog: int,
    sample_s: float,
    env: Mapping[str, str],
    workdir: Path | None = None,
    *,
    stream_s: float = STREAM_S,
) -> SoakFigures:
    if not 1 <= agents <= MAX_AGENTS or minutes <= 0 or backlog < agents or sample_s <= 0 or stream_s <= 0:
        raise ConfigError(
            "bench soak",
            f"expected 1 <= agents <= {MAX_AGENTS}, minutes > 0, backlog >= agents, sample_s > 0 and "
            f"stream_s > 0, got {agents}, {minutes:g}, {backlog}, {sample_s:g} and {stream_s:g}",
        )
    run = _Soak(agents, minutes, backlog, sample_s, stream_s)
    if workdir is not None:
        return await _soak_in(workdir, run, env)
    with tempfile.TemporaryDirectory(prefix="gangline-soak-") as tmp:
        return await _soak_in(Path(tmp), run, env)


@dataclass(frozen=True)
class _Soak:
    agents: int
    minutes: float
    backlog: int
    sample_s: float
    stream_s: float


async def _soak_in(work: Path, run: _Soak, env: Mapping[str, str]) -> SoakFigures:
    from gangline.server.app import create_app  # FastAPI and uvicorn load only for this benchmark, as for serve
    from gangline.server.serving import serving

    paths = bench_repo(work / "repo", env)
    config = _soak_config(paths, work, run, env)
    store = open_sqlite(paths.db_file)
    try:
        app = create_app(paths, config, store, env)
        async with serving(app) as url, asyncio.TaskGroup() as tg:
            samples, emitted, delivered = await _drive(state_of(app).running(), url, run, tg)
        return _figures(store, run, samples, emitted, delivered)
    finally:
        store.close()


async def _drive(orch: Orchestrator, url: str, run: _Soak, tg: asyncio.TaskGroup) -> tuple[list[Sample], int, int]:
    seen = [orch.store.last_event_id()]
    follower = tg.create_task(_follow(url, seen[0], seen))
    samples: list[Sample] = []
    start, cpu = time.monotonic(), cpu_s()
    end = start + run.minutes * 60
    try:
        while (now := time.monotonic()) < end:
            _top_up(orch, run.backlog)
            await asyncio.sleep(min(run.sample_s, max(0.0, end - now)))
            cpu_now, wall = cpu_s(), time.monotonic()
            samples.append(_sample(orch.store, wall - start, seen[-1], (cpu_now - cpu) / max(wall - now, 1e-9)))
            cpu = cpu_now
        emitted = await _caught_up(orch.store, seen, bound_s=60)
    finally:
        follower.cancel()
    return samples, emitted, seen[-1]


def _top_up(orch: Orchestrator, backlog: int) -> None:
    waiting = sum(1 for item in orch.store.list_items() if item.stage is Stage.BACKLOG)
    for n in range(backlog - waiting):
        orch.add_item(ItemDraft(title=f"soak item {n}", body="Stream for a while, then commit a file."), ACTOR)


async def _follow(url: str, after: int, seen: list[int]) -> None:
    """Follow ``/api/events`` from ``after``, keeping the last id received in ``seen[-1]`` (a one-slot cell)."""
    async with (
        httpx.AsyncClient(timeout=httpx.Timeout(30, read=None)) as client,
        client.stream("GET", f"{url}/api/events", params={"after": after}) as response,
    ):
        async for line in response.aiter_lines():
            if line.startswith("id: "):
                event_id = int(line[4:])
                if event_id != seen[-1] + 1:
                    raise RuntimeError(f"the stream skipped from event {seen[-1]} to {event_id}")
                seen[-1] = event_id


async def _caught_up(store: Store, seen: list[int], bound_s: float) -> int:
    """Wait (bounded) for the stream client to reach the last event; that event's id."""
    deadline = time.monotonic() + bound_s
    while seen[-1] < (emitted := store.last_event_id()) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return emitted


def _sample(store: Store, at_s: float, delivered: int, cpu_share: float) -> Sample:
    items = store.list_items()
    return Sample(
        at_s=round(at_s, 1),
        emitted=store.last_event_id(),
        delivered=delivered,
        rss_mb=round(_rss_mb(), 1),
        fds=len(os.listdir("/proc/self/fd")),
        cpu_pct=round(cpu_share * 100, 1),
        running=len(store.runs(live_only=True)),
        done=sum(1 for item in items if item.stage is Stage.DONE),
    )


def _figures(store: Store, run: _Soak, samples: Sequence[Sample], emitted: int, delivered: int) -> SoakFigures:
    if not samples:
        raise RuntimeError("no sample was taken: minutes must cover at least one sample_s")
    quarter = max(1, len(samples) // 4)
    first, last = samples[:quarter], samples[-quarter:]
    return SoakFigures(
        agents=run.agents,
        minutes=run.minutes,
        backlog=run.backlog,
        stream_s=run.stream_s,
        samples=tuple(samples),
        emitted=emitted,
        delivered=delivered,
        lost=emitted - delivered,
        rss_mb_first_quarter=statistics.median(s.rss_mb for s in first),
        rss_mb_last_quarter=statistics.median(s.rss_mb for s in last),
        fds_first_quarter=statistics.median(s.fds for s in first),
        fds_last_quarter=statistics.median(s.fds for s in last),
        items_done=sum(1 for item in store.list_items() if item.stage is Stage.DONE),
        agent_runs=len(store.runs()),
    )


def _soak_config(paths: ProjectPaths, work: Path, run: _Soak, env: Mapping[str, str]) -> ProjectConfig:
    steps: list[dict[str, object]] = []
    for n in range(max(1, round(run.stream_s / 0.25))):
        steps += [{"say": f"step {n} of item {{item_id}}: reading, thinking, editing"}, {"sleep": 0.25}]
        if n % 4 == 0:
            steps.append({"run": "git status --short | head -3"})
    steps += [{"write": "soak/{item_id}.txt", "text": "item {item_id}\n"}, {"commit": "Add soak/{item_id}.txt"}]
    scenario = work / "coder.json"
    scenario.write_text(json.dumps({"attempts": [steps]}))
    args = ["--scenario", str(scenario), "--scenario-state", str(work / "coder.state")]
    text = (
        f'max_retries = 0\nqa_mode = "server"\n\n[concurrency]\ncoder = {run.agents}\n\n'
        '[[gate]]\nname = "ok"\ncommand = "true"\n\n'
        f'[[agent]]\nname = "coder"\nrole = "coder"\ncli = "fake"\nextra_args = {json.dumps(args)}\n'
    )
    paths.state_dir.mkdir()
    paths.config_file.write_text(text)
    return load_project_text(text, str(paths.config_file), env)


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)
