"""``gangline bench``: the measurements (BENCHMARKS.md says what each figure means), printed as JSON."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from gangline.cli.common import bench_app, err_console


def register() -> None:
    for name, command in (("ingest", bench_ingest), ("pipeline", bench_pipeline), ("fanout", bench_fanout),
                          ("soak", bench_soak), ("spawn", bench_spawn), ("store", bench_store),
                          ("nodes", bench_nodes)):  # fmt: skip
        bench_app.command(name)(command)


def bench_ingest(
    events: Annotated[int, typer.Option(min=10, help="How many stream-json lines to push through.")] = 200_000,
    transcript: Annotated[Path | None, typer.Option(help="Transcript to cycle (default: the shipped one).")] = None,
) -> None:
    """Fake CLI in a real PTY -> parse -> typed events -> durable log -> bus with 4 subscribers."""
    import asyncio

    from gangline.bench.ingest import ingest

    figures = asyncio.run(ingest(events, os.environ, transcript))
    print(json.dumps(figures.as_dict()))


def bench_store(
    database_url: Annotated[
        str | None, typer.Option(help="Another database to measure beside SQLite (postgresql+psycopg://...).")
    ] = None,
    transitions: Annotated[int, typer.Option(min=10, help="Transitions on each database.")] = 1000,
) -> None:
    """One compare-and-set transition's latency (p50, p99), on SQLite and on DATABASE_URL, interleaved."""
    from dataclasses import asdict

    from gangline.bench.store import bench_store as measure

    print(json.dumps([asdict(figure) for figure in measure(database_url, transitions)]))


def bench_spawn(
    runs: Annotated[int, typer.Option(min=2, help="Runs of the fake CLI each way, interleaved.")] = 50,
) -> None:
    """What the sandbox adds to starting an agent: spawn -> first event, with and without, and the room's own cost."""
    import asyncio

    from gangline.bench.spawn import spawn

    print(json.dumps(asyncio.run(spawn(runs, os.environ)).as_dict()))


def bench_pipeline(
    items: Annotated[int, typer.Option(min=1, help="Items to take through the whole pipeline.")] = 50,
    backlog: Annotated[int, typer.Option(min=0, help="Items left waiting in the backlog all along.")] = 500,
    sandbox: Annotated[str, typer.Option(help="The project's sandbox setting: auto, required or off.")] = "auto",
) -> None:
    """Items through the whole pipeline with fake agents: items/min, coder-exit -> QA-spawn latency, tick cost."""
    import asyncio

    from gangline.bench.pipeline import pipeline
    from gangline.cli.common import choice
    from gangline.core.profiles import SandboxMode

    mode = choice(SandboxMode, sandbox, "--sandbox")
    figures = asyncio.run(pipeline(items, backlog, os.environ, sandbox=mode.value))
    print(json.dumps(figures.as_dict()))


def bench_fanout(
    agents: Annotated[int, typer.Option(min=1, max=64, help="Fake agents streaming at once.")] = 32,
    rate: Annotated[float, typer.Option(min=0.1, help="Lines per second each agent writes.")] = 200.0,
    subscribers: Annotated[int, typer.Option(min=1, help="SSE clients, spread round robin over the runs.")] = 50,
    seconds: Annotated[float, typer.Option(min=0.1, help="How long each agent streams.")] = 20.0,
) -> None:
    """Fake agents -> the real server -> SSE subscribers on loopback: end-to-end latency, emitted vs delivered."""
    import asyncio

    from gangline.bench.fanout import fanout

    figures = asyncio.run(fanout(agents, rate, subscribers, seconds, os.environ))
    print(json.dumps(figures.as_dict()))


def bench_nodes(
    nodes: Annotated[list[int], typer.Option("--nodes", min=1, max=16, help="Node counts to measure.")] = [1, 2, 4],  # noqa: B006
    items: Annotated[int, typer.Option(min=1, help="Items through each configuration.")] = 12,
    agent_s: Annotated[float, typer.Option(min=0.0, help="How long each fake coder works before it commits.")] = 3.0,
    rounds: Annotated[int, typer.Option(min=1, help="Rounds of every configuration, interleaved.")] = 3,
) -> None:
    """Items/min with 1, 2, 4 build nodes against the server alone; lease-to-spawn and event upload latency."""
    from gangline.bench.nodes import bench_nodes as measure

    print(json.dumps(measure(sorted(set(nodes)), items, agent_s, rounds).as_dict()))


def bench_soak(
    agents: Annotated[int, typer.Option(min=1, max=64, help="Fake coders streaming at once.")] = 64,
    minutes: Annotated[float, typer.Option(min=0.01, help="How long items flow.")] = 10.0,
    backlog: Annotated[int, typer.Option(min=1, help="Items kept waiting in the backlog all along.")] = 1000,
    sample_s: Annotated[float, typer.Option(min=0.1, help="Seconds between samples.")] = 10.0,
    stream_s: Annotated[
        float | None, typer.Option(min=0.25, help="Seconds each fake coder streams before it commits (default 60).")
    ] = None,
) -> None:
    """Agents streaming and items flowing for minutes: events emitted vs delivered, RSS, fds, CPU sampled."""
    import asyncio

    from gangline.bench.soak import STREAM_S, soak

    run = soak(agents, minutes, backlog, sample_s, os.environ, stream_s=stream_s or STREAM_S)
    figures = asyncio.run(run)
    print(json.dumps(figures.as_dict()))
    if figures.lost or not figures.fds_flat or not figures.rss_flat:
        fds = f"{figures.fds_first_quarter:g} -> {figures.fds_last_quarter:g}"
        rss = f"{figures.rss_mb_first_quarter:g} -> {figures.rss_mb_last_quarter:g} MB"
        err_console.print(f"[red]error:[/] {figures.lost} events lost; open fds {fds}; RSS {rss}")
        raise typer.Exit(1)
