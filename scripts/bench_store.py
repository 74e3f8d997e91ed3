"""Measure the store's transition latency on SQLite and on PostgreSQL, side by side (needs ./scripts/test's installs).

    .venv/bin/python scripts/bench_store.py --runs 5 --transitions 1000

Starts a private PostgreSQL cluster (tests/kits/postgres.py: initdb in a temporary directory,
a Unix socket) with PostgreSQL's default durability (fsync on, synchronous commit: a commit is
on disk, as SQLite's ``synchronous=FULL`` is) and runs ``gangline bench store`` against a fresh
database in it, ``--runs`` times; prints each run's figures and the medians over the runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from gangline.bench.store import bench_store
from kits.postgres import private_cluster


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--transitions", type=int, default=1000)
    args = parser.parse_args()
    with private_cluster(durable=True) as cluster:
        runs = []
        for _ in range(args.runs):
            figures = bench_store(cluster.database(), args.transitions)
            runs.append({f.database: f for f in figures})
            print(json.dumps({name: [round(f.p50_ms, 3), round(f.p99_ms, 3)] for name, f in runs[-1].items()}))
    for name in runs[0]:
        p50 = statistics.median(run[name].p50_ms for run in runs)
        p99 = statistics.median(run[name].p99_ms for run in runs)
        print(f"{name}: p50 {p50:.3f} ms, p99 {p99:.3f} ms (medians of {len(runs)} runs)")


if __name__ == "__main__":
    main()
