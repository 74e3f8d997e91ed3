"""Health for probes (open, without a token) and Prometheus metrics read from the store at scrape time."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from typing import Any

from fastapi import Request, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from gangline.core.stages import Hold, Stage
from gangline.core.wire import HealthOut, RunOut
from gangline.pipeline.fleet import Fleet
from gangline.pipeline.top import trees
from gangline.server.state import ServerState, state_of

log = logging.getLogger(__name__)


async def health(request: Request, response: Response) -> HealthOut:
    """Liveness, open without a token: it tells only whether the database and the orchestrator are up."""
    state = state_of(request.app)
    try:
        state.store.last_event_id()
        db = True
    except Exception:
        log.warning("database check failed", exc_info=True, extra={"action": "health"})
        db = False
    running = state.serving.running
    if not (db and running):
        response.status_code = 503
    return HealthOut(ok=db and running, db=db, orchestrator=running)


async def metrics(request: Request) -> PlainTextResponse:
    """Prometheus text: items per stage and hold, live runs, runs by outcome, tokens, cost and events."""
    registry = state_of(request.app).registry
    return PlainTextResponse(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


class _PipelineCollector:
    """Reads the figures from the store at scrape time: nothing to keep in step, nothing global."""

    def __init__(self, state: ServerState) -> None:
        self.state = state

    def collect(self) -> Iterable[Metric]:
        state = self.state
        store = state.store
        items = store.list_items()
        runs = store.runs()
        stages = Counter(item.stage for item in items)
        holds = Counter(item.state.hold for item in items if item.state.hold)
        yield _labelled(GaugeMetricFamily("gangline_items", "Work items per stage", labels=["stage"]), stages, Stage)
        yield _labelled(GaugeMetricFamily("gangline_items_held", "Work items per hold", labels=["hold"]), holds, Hold)
        yield GaugeMetricFamily("gangline_items_frozen", "Frozen work items", value=sum(i.state.frozen for i in items))
        yield GaugeMetricFamily("gangline_runs_live", "Agent runs in progress", value=sum(r.live for r in runs))
        outcomes = CounterMetricFamily("gangline_runs", "Finished agent runs by outcome", labels=["outcome"])
        for outcome, count in sorted(Counter(r.outcome.value for r in runs if r.outcome).items()):
            outcomes.add_metric([outcome], count)
        yield outcomes
        tokens = CounterMetricFamily("gangline_tokens", "Tokens used by agent runs", labels=["kind"])
        for kind in ("input", "output", "cache_read", "cache_write"):
            tokens.add_metric([kind], sum(getattr(r, f"{kind}_tokens") for r in runs))
        yield tokens
        yield CounterMetricFamily("gangline_cost_usd", "Agent cost in USD", value=sum(r.cost_usd for r in runs))
        yield CounterMetricFamily("gangline_events", "Pipeline events recorded", value=store.last_event_id())
        yield GaugeMetricFamily(
            "gangline_orchestrator_up", "1 while the pipeline is driven", value=state.serving.running
        )
        yield self._nodes()
        yield from _processes([RunOut.of(run) for run in runs if run.live])

    def _nodes(self) -> Metric:
        """Build nodes by state (live, draining, gone), as ``gangline nodes`` shows them."""
        nodes = GaugeMetricFamily("gangline_nodes", "Build nodes by state", labels=["state"])
        found = Fleet(self.state.store, self.state.config.nodes.lease_s).nodes()
        states = Counter("draining" if n.draining else "live" if n.live else "gone" for n in found)
        for name in ("live", "draining", "gone"):
            nodes.add_metric([name], states.get(name, 0))
        return nodes


def _processes(live: list[RunOut]) -> Iterable[Metric]:
    """Each live run's process tree on this machine (``pipeline.top``): how many, their CPU seconds so far (a rate
    of it is the CPU in use) and their resident memory."""
    labels = ["run", "item", "role", "profile"]
    count = GaugeMetricFamily("gangline_run_processes", "Processes in a live run's tree", labels=labels)
    cpu = GaugeMetricFamily("gangline_run_cpu_seconds", "CPU seconds used by a live run's processes", labels=labels)
    memory = GaugeMetricFamily("gangline_run_memory_bytes", "Resident memory of a live run's processes", labels=labels)
    for run_id, tree in trees(live).items():
        run = next(run for run in live if run.id == run_id)
        values = [run.id, run.about, run.role.value, run.profile]
        count.add_metric(values, len(tree))
        cpu.add_metric(values, sum(process.cpu_s for process in tree))
        memory.add_metric(values, sum(process.rss_bytes for process in tree))
    return count, cpu, memory


def _labelled(family: GaugeMetricFamily, counts: Counter[Any], values: Iterable[Stage | Hold]) -> GaugeMetricFamily:
    for value in values:
        family.add_metric([value.value], counts.get(value, 0))
    return family


def registry_for(state: ServerState) -> CollectorRegistry:
    """A registry of the app's own (not the process-wide one): two apps in a process never mix figures."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_PipelineCollector(state))
    return registry
