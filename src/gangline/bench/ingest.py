"""``gangline bench ingest``: the runner's ingest path, fake CLI in a real PTY to four subscribers."""

from __future__ import annotations

import asyncio
import resource
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from gangline.agents.bus import Bus, Subscription
from gangline.agents.runner import Runner, RunRequest
from gangline.core.events import RunOutcome
from gangline.core.profiles import AgentProfile, CliKind, RunnerSettings
from gangline.fake.cli import shipped_transcript

SUBSCRIBERS = 4


@dataclass(frozen=True)
class IngestFigures:
    events: int
    seconds: float
    events_per_s: float
    peak_rss_mb: float

    def as_dict(self) -> dict[str, float | int]:
        return {
            "events": self.events,
            "seconds": round(self.seconds, 4),
            "events_per_s": round(self.events_per_s),
            "peak_rss_mb": round(self.peak_rss_mb, 1),
        }


async def _consume(sub: Subscription, seen: list[int]) -> None:
    # A subscriber that looks at every record, as a stream writer would, in bulk.
    last = 0
    while batch := await sub.next_batch():
        for record in batch:
            last = record.id
    seen.append(last)


async def ingest(events: int, base_env: Mapping[str, str], transcript: Path | None = None) -> IngestFigures:
    """Push ``events`` stream-json lines through fake CLI -> PTY -> parse -> log -> bus."""
    with tempfile.TemporaryDirectory(prefix="gangline-bench-") as tmp:
        work = Path(tmp)
        extra = ("--transcript", str(transcript or shipped_transcript()), "--repeat-to", str(events))
        profile = AgentProfile(name="bench", cli=CliKind.FAKE, extra_args=extra)
        runner = Runner(RunnerSettings(subscriber_queue=max(events, 1) + 16), work / "logs", base_env)
        bus = Bus(default_maxsize=events + 16)
        seen: list[int] = []
        started = time.perf_counter()
        async with asyncio.TaskGroup() as tg:
            for _ in range(SUBSCRIBERS):
                tg.create_task(_consume(bus.subscribe(), seen))
            summary = await runner.run(RunRequest("bench", profile, "bench", work), bus)
        seconds = time.perf_counter() - started
    if summary.outcome is not RunOutcome.SUCCEEDED:
        raise RuntimeError(f"benchmark run did not succeed: {summary.outcome.value}: {summary.reason}")
    if seen != [summary.last_event_id] * SUBSCRIBERS or bus.cut_offs:
        raise RuntimeError(f"subscribers saw {seen}, expected {summary.last_event_id} each")
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return IngestFigures(events, seconds, events / seconds, peak_kb / 1024)


# --- the whole pipeline ------------------------------------------------------------------------
