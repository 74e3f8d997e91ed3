"""``gangline bench fanout``: fake agents stream through the real server to SSE subscribers on loopback."""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from gangline.agents.runlog import replay
from gangline.bench.pipeline import ACTOR, Spread, bench_repo
from gangline.bench.subscribers import Report, Tally, stamp_of
from gangline.core.errors import ConfigError
from gangline.core.items import ItemDraft
from gangline.fake.cli import shipped_transcript
from gangline.pipeline.orchestrator import Orchestrator
from gangline.project.config import ProjectConfig, load_project_text
from gangline.project.paths import ProjectPaths
from gangline.server.state import state_of
from gangline.store import open_sqlite

if TYPE_CHECKING:
    from fastapi import FastAPI

MAX_AGENTS = 64  # project.toml's limit on concurrent coders


@dataclass(frozen=True)
class FanoutFigures:
    """What ``gangline bench fanout`` prints (``as_dict``); BENCHMARKS.md says what each figure means."""

    agents: int
    rate: float
    subscribers: int
    seconds: float
    emitted: int  # lines the agents wrote (every one stamped), as found in the run logs
    delivered: int  # stamped lines the subscribers received, summed over subscribers
    expected_deliveries: int  # the lines of each subscriber's run, summed over subscribers
    gaps: int  # ``event: gap`` messages received (each followed by a catch-up from the log)
    catch_up: int  # deliveries of lines written before the subscriber's stream opened: not timed
    latency: Spread  # stamp (the agent's write) -> the bytes reaching the subscriber process
    steady_latency: Spread  # the same, over the lines written while every agent was streaming
    steady_s: float  # how long every agent was streaming: from the last one's first line to the first one's last
    peak_rss_mb: float  # this process: the server, its orchestrator and runners
    server_cpu_s: float
    subscribers_cpu_s: float  # the subscriber process

    def as_dict(self) -> dict[str, float | int]:
        return {
            "agents": self.agents,
            "rate": self.rate,
            "subscribers": self.subscribers,
            "seconds": self.seconds,
            "emitted": self.emitted,
            "delivered": self.delivered,
            "expected_deliveries": self.expected_deliveries,
            "gaps": self.gaps,
            "catch_up": self.catch_up,
            **self.latency.as_dict("latency"),
            **self.steady_latency.as_dict("steady_latency"),
            "steady_s": round(self.steady_s, 2),
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            "server_cpu_s": round(self.server_cpu_s, 2),
            "subscribers_cpu_s": round(self.subscribers_cpu_s, 2),
        }


@dataclass(frozen=True)
class _Logged:
    """One run's log, as the benchmark checks it."""

    last_id: int
    lines: int  # stamped lines: what the agent wrote
    first_stamp: float
    last_stamp: float


async def fanout(
    agents: int, rate: float, subscribers: int, seconds: float, env: Mapping[str, str], workdir: Path | None = None
) -> FanoutFigures:
    """``agents`` fake agents stream ``rate`` lines/s for ``seconds`` through the real server to ``subscribers``.

    The agents are the pipeline's coders (items started by the orchestrator, the fake CLI in a
    PTY through the runner); the subscribers, in a process of their own
    (``gangline.bench.subscribers``), follow the runs' SSE streams over loopback, spread round
    robin. Fails unless every subscriber received every record of its run exactly once.
    """
    lines = round(rate * seconds)
    if not 1 <= agents <= MAX_AGENTS or subscribers < 1 or lines < 3:
        raise ConfigError(
            "bench fanout",
            f"expected 1 <= agents <= {MAX_AGENTS}, subscribers >= 1 and rate x seconds >= 3 lines, "
            f"got {agents}, {subscribers} and {lines}",
        )
    if workdir is not None:
        return await _fanout_in(workdir, agents, rate, subscribers, seconds, env)
    with tempfile.TemporaryDirectory(prefix="gangline-bench-") as tmp:
        return await _fanout_in(Path(tmp), agents, rate, subscribers, seconds, env)


async def _fanout_in(
    work: Path, agents: int, rate: float, subscribers: int, seconds: float, env: Mapping[str, str]
) -> FanoutFigures:
    lines = round(rate * seconds)
    paths = bench_repo(work / "repo", env)
    config = _fanout_config(paths, agents, rate, lines, env)
    store = open_sqlite(paths.db_file)
    try:
        from gangline.server.app import create_app  # FastAPI and uvicorn load only for this benchmark, as for serve

        app = create_app(paths, config, store, env)
        result = work / "subscribers.json"
        started = cpu_s()
        await _serve(app, agents, subscribers, seconds, result, env)
        # Both before the report is read: its latencies are the benchmark's memory, not the server's.
        server_cpu, peak_kb = cpu_s() - started, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        logged = {run.id: _logged(Path(run.log_path)) for run in store.runs()}
    finally:
        store.close()
    report = msgspec.json.decode(result.read_bytes(), type=Report)
    _check_fanout(report, logged, agents, subscribers, lines)
    tallies = report.subscribers
    steady = (max(log.first_stamp for log in logged.values()), min(log.last_stamp for log in logged.values()))
    return FanoutFigures(
        agents=agents,
        rate=rate,
        subscribers=subscribers,
        seconds=seconds,
        emitted=sum(log.lines for log in logged.values()),
        delivered=sum(t.stamped for t in tallies),
        expected_deliveries=sum(logged[t.run_id].lines for t in tallies),
        gaps=sum(t.gaps for t in tallies),
        catch_up=sum(t.catch_up for t in tallies),
        latency=Spread.of([s for t in tallies for s in t.latencies_s] or [0.0]),  # all catch-up: no figure
        steady_latency=Spread.of(_between(tallies, *steady) or [0.0]),
        steady_s=max(0.0, steady[1] - steady[0]),
        peak_rss_mb=peak_kb / 1024,
        server_cpu_s=server_cpu,
        subscribers_cpu_s=report.cpu_s,
    )


def _between(tallies: Sequence[Tally], start: float, end: float) -> list[float]:
    """The latencies of lines stamped in [start, end]."""
    return [lat for t in tallies for stamp, lat in zip(t.stamps, t.latencies_s, strict=True) if start <= stamp <= end]


def _fanout_config(paths: ProjectPaths, agents: int, rate: float, lines: int, env: Mapping[str, str]) -> ProjectConfig:
    # No retries: a run that ends without a commit blocks its item, so each item runs its agent once.
    args = ["--transcript", str(shipped_transcript()), "--rate", f"{rate:g}", "--repeat-to", str(lines), "--stamp"]
    text = (
        f"max_retries = 0\n\n[concurrency]\ncoder = {agents}\n\n"
        f'[[agent]]\nname = "streamer"\nrole = "coder"\ncli = "fake"\nextra_args = {json.dumps(args)}\n'
    )
    paths.state_dir.mkdir()
    paths.config_file.write_text(text)
    return load_project_text(text, str(paths.config_file), env)


async def _serve(
    app: FastAPI, agents: int, subscribers: int, seconds: float, result: Path, env: Mapping[str, str]
) -> None:
    """Serve ``app`` on loopback while the subscriber process follows ``agents`` items started meanwhile."""
    from gangline.server.serving import serving

    async with serving(app) as url:
        code = await _subscribe(app, url, agents, subscribers, seconds * 3 + 60, result, env)
    if not result.exists():
        raise RuntimeError(f"the subscriber process exited with status {code} and no report")


async def _subscribe(
    app: FastAPI, url: str, agents: int, subscribers: int, timeout_s: float, result: Path, env: Mapping[str, str]
) -> int:
    """Start the subscriber process, then the ``agents`` items once it listens; its exit status."""
    argv = ["-m", "gangline.bench.subscribers", url, str(result), "--agents", str(agents)]
    argv += ["--subscribers", str(subscribers), "--timeout", str(timeout_s)]
    proc = await asyncio.create_subprocess_exec(sys.executable, *argv, stdout=asyncio.subprocess.PIPE, env=dict(env))
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(30):
            said = await proc.stdout.readline()
        if said.strip() != b"ready":
            raise RuntimeError(f"the subscriber process did not start: {said!r}, exit {await proc.wait()}")
        orch: Orchestrator = state_of(app).running()
        for n in range(1, agents + 1):  # one tick starts them all: nothing awaits in between
            orch.add_item(ItemDraft(title=f"fanout agent {n}"), ACTOR)
        async with asyncio.timeout(timeout_s + 10):
            return await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _logged(path: Path) -> _Logged:
    last, stamps = 0, []
    for record in replay(path):
        last = record.id
        stamp = stamp_of(bytes(record.raw))
        if stamp is not None:
            stamps.append(stamp)
    return _Logged(last, len(stamps), stamps[0] if stamps else 0.0, stamps[-1] if stamps else 0.0)


def _check_fanout(report: Report, logged: Mapping[str, _Logged], agents: int, subscribers: int, lines: int) -> None:
    """Every agent wrote all its lines into the log, and every subscriber got all its run's records once, in order."""
    problems = [report.error] if report.error else []
    if len(logged) != agents or any(log.lines != lines for log in logged.values()):
        problems.append(f"expected {agents} runs of {lines} lines, logged {[log.lines for log in logged.values()]}")
    if len(report.subscribers) != subscribers:
        problems.append(f"{len(report.subscribers)} of {subscribers} subscribers followed a run")
    for t in report.subscribers:
        log = logged.get(t.run_id, _Logged(-1, -1, 0.0, 0.0))
        complete = t.ended and t.out_of_order == 0 and t.records == t.last_id == t.end_last_id == log.last_id
        if t.status != 200 or not complete or t.stamped != log.lines:
            problems.append(
                f"{t.run_id}: status {t.status}, ended {t.ended}, {t.records} records up to id {t.last_id} "
                f"({t.out_of_order} out of order, {t.stamped} lines); the log has {log.last_id} ({log.lines} lines)"
            )
    if problems:
        raise RuntimeError(f"the fan-out benchmark lost or repeated events: {'; '.join(problems[:5])}")
