"""The soak benchmark, run tiny: items flow through the real server, the stream client misses nothing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from gangline.bench.soak import soak
from gangline.core.errors import ConfigError


async def test_a_tiny_soak_delivers_every_event_and_samples_memory_fds_and_work_done(tmp_path: Path) -> None:
    figures = await soak(3, 0.15, 6, 1.5, dict(os.environ), tmp_path, stream_s=2)
    shown = json.loads(json.dumps(figures.as_dict()))
    assert shown["lost"] == 0 and shown["delivered"] == shown["emitted"] > 0
    samples = shown["samples"]
    assert len(samples) >= 4
    assert all(0 < s["delivered"] <= s["emitted"] for s in samples)
    assert [s["emitted"] for s in samples] == sorted(s["emitted"] for s in samples)
    assert all(s["rss_mb"] > 10 and s["fds"] > 3 for s in samples)
    assert max(s["running"] for s in samples) <= 3  # never more agents than slots
    assert shown["items_done"] >= 1 and samples[-1]["done"] >= 1  # items really flowed to done
    assert shown["fds_flat"] is True


@pytest.mark.parametrize(
    "agents, minutes, backlog, stream_s", [(0, 1, 10, 4), (65, 1, 100, 4), (4, 0, 10, 4), (4, 1, 2, 4), (4, 1, 10, 0)]
)
async def test_soak_refuses_figures_it_cannot_run_naming_them(
    agents: int, minutes: float, backlog: int, stream_s: float
) -> None:
    with pytest.raises(ConfigError, match="bench soak"):
        await soak(agents, minutes, backlog, 10, dict(os.environ), stream_s=stream_s)
