"""``gangline bench store``: one compare-and-set transition's latency, on SQLite and on another database, side by side.

A transition is what the pipeline does at every step: read the item's state, UPDATE it
compare-and-set, append its event row, read the item back, in one transaction, committed. The
figure is that call as a caller sees it (``Store.hold`` / ``Store.transition``: block, then
unblock, on one item), on a fresh SQLite file beside a database the caller names (PostgreSQL),
in rounds that alternate between them so a busy machine slows both alike.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from gangline.core.databases import check_url
from gangline.core.items import ItemDraft
from gangline.core.stages import Trigger
from gangline.store import Store, open_store

ROUND = 50  # transitions per database before switching to the other


@dataclass(frozen=True)
class Latency:
    database: str
    transitions: int
    p50_ms: float
    p99_ms: float
    mean_ms: float


def latency(database: str, samples: list[float]) -> Latency:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return Latency(database, len(samples), statistics.median(ordered) * 1e3, p99 * 1e3, statistics.fmean(ordered) * 1e3)


def bench_store(other_url: str | None, transitions: int) -> list[Latency]:
    """SQLite's figures, and ``other_url``'s when given (its database gets one item and its events)."""
    with tempfile.TemporaryDirectory(prefix="gangline-bench-store-") as tmp:
        urls = {"sqlite": f"sqlite:///{Path(tmp) / 'state.db'}"}
        if other_url is not None:
            urls[check_url(other_url)[0]] = other_url
        stores = {name: open_store(url) for name, url in urls.items()}
        try:
            items = {name: store.create_item(ItemDraft(title="bench"), "bench").id for name, store in stores.items()}
            samples: dict[str, list[float]] = {name: [] for name in stores}
            while any(len(taken) < transitions for taken in samples.values()):
                for name, store in stores.items():
                    samples[name] += _round(store, items[name], min(ROUND, transitions - len(samples[name])))
            return [latency(name, taken) for name, taken in samples.items()]
        finally:
            for store in stores.values():
                store.close()


def _round(store: Store, item_id: int, count: int) -> list[float]:
    taken = []
    for n in range(count):
        started = time.perf_counter()
        if n % 2 == 0:
            store.hold(item_id, Trigger.BLOCK, "bench", "bench")
        else:
            store.transition(item_id, Trigger.UNBLOCK, "bench")
        taken.append(time.perf_counter() - started)
    if count % 2:  # leave it unblocked for the next round
        store.transition(item_id, Trigger.UNBLOCK, "bench")
    return taken
