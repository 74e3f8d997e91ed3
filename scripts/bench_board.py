"""Measure the web board with a large backlog, in Debian's Chromium (needs the test extras).

    .venv/bin/python scripts/bench_board.py --items 1000 --runs 5

Three figures, each the median of ``--runs`` (or 20 for the small ones):
- list: GET /api/items?all=true over real HTTP, the request the board makes on every change;
- first render: loading the page until every card is on the board (the browser already running);
- change to card: a person's action through the API until the browser shows the card changed
  (event stream -> list re-read -> card redrawn).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from kits.browser_kit import page_at
from kits.mcp_kit import served
from kits.pipeline_kit import Project

LATER = 32503680000.0  # the year 3000: the backlog waits, no agent starts


async def bench(items: int, runs: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        project = Project(Path(tmp))
        project.agent("coder", [[{"hang": True}]])
        project.configure()
        for n in range(items):
            item = project.add(f"Backlog item number {n + 1} with a title of a usual length", criteria=["works"])
            project.store.schedule_start(item.id, LATER, "bench")
        async with served(project) as s, httpx.AsyncClient(base_url=s.url) as rest:
            lists = []
            for _ in range(20):
                start = time.perf_counter()
                (await rest.get("/api/items", params={"all": "true"})).raise_for_status()
                lists.append(time.perf_counter() - start)
            renders = []
            async with page_at(s.url) as page:
                for _ in range(runs):
                    start = time.perf_counter()
                    await page.reload()
                    await page.locator("article.card").nth(items - 1).wait_for(timeout=120_000)
                    renders.append(time.perf_counter() - start)
                changes = []
                for n in range(1, 21):
                    card = page.locator(f'article.card[data-item="{n}"].held')
                    start = time.perf_counter()
                    (await rest.post(f"/api/items/{n}/block", json={"reason": "bench"})).raise_for_status()
                    await card.wait_for(timeout=30_000)
                    changes.append(time.perf_counter() - start)
    return {
        "list_ms": statistics.median(lists) * 1000,
        "first_render_ms": statistics.median(renders) * 1000,
        "change_to_card_ms": statistics.median(changes) * 1000,
        "change_to_card_max_ms": max(changes) * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    figures = asyncio.run(bench(args.items, args.runs))
    for name, value in figures.items():
        print(f"{name:>22}: {value:9.1f}")


if __name__ == "__main__":
    main()
