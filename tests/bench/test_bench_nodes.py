"""``gangline bench nodes``: real servers and nodes, as a person runs it (small, to check its figures are real)."""

from __future__ import annotations

import json

from kits.helpers import gangline, ok


def test_bench_nodes_reports_throughput_per_configuration_and_both_latencies() -> None:
    args = ("--nodes", "1", "--items", "2", "--agent-s", "0", "--rounds", "1")
    figures = json.loads(ok(gangline("bench", "nodes", *args)))
    assert set(figures["items_per_min"]) == {"alone", "1 node"}
    assert all(rate > 0 for rate in figures["items_per_min"].values())
    # Two leased runs, and the streaming agent's lines, each measured from the node to a server subscriber.
    assert 0 < figures["lease_to_spawn_ms_p50"] <= figures["lease_to_spawn_ms_p99"] < 10_000
    assert 0 < figures["upload_ms_p50"] <= figures["upload_ms_p99"] < 10_000
