"""How long ``gangline --help``, ``gangline ls`` and ``gangline status`` take as whole processes.

    .venv/bin/python scripts/bench_cli.py [--runs 10] [--items 100] GANGLINE [GANGLINE ...]

Each GANGLINE is a ``gangline`` executable (say the ``.venv/bin/gangline`` of two checkouts, to
compare before and after). Each gets its own repository with ``gangline init`` run and
``--items`` items imported from item files, and no server running, so ``ls`` and ``status``
read the store themselves. The runs are interleaved (every command of every GANGLINE once per
round) so a noisy machine slows them all alike. Prints JSON: the median and the spread of the
wall-clock seconds per GANGLINE and command.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

COMMANDS = (["--help"], ["ls"], ["status"])


def project(root: Path, gangline: str, items: int) -> Path:
    repo = root / "repo"
    repo.mkdir(parents=True)
    for args in (["init", "-q", "-b", "main"], ["commit", "-q", "--allow-empty", "-m", "initial"]):
        subprocess.run(["git", *args], cwd=repo, check=True, env=_env())
    subprocess.run([gangline, "init"], cwd=repo, check=True, capture_output=True, env=_env())
    drafts = root / "items"
    drafts.mkdir()
    for n in range(1, items + 1):
        text = f"---\ntitle: Item number {n} with a title of a usual length\n---\nSome body text.\n\n"
        text += "## Acceptance criteria\n\n- [ ] it works\n- [ ] it is tested\n"
        (drafts / f"{n}-item.md").write_text(text)
    subprocess.run([gangline, "import", str(drafts)], cwd=repo, check=True, capture_output=True, env=_env())
    return repo


def _env() -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if k not in ("GANGLINE_TOKEN",)}
    return {**keep, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@b", "GIT_COMMITTER_NAME": "b",
            "GIT_COMMITTER_EMAIL": "b@b", "COLUMNS": "120"}  # fmt: skip


def once(gangline: str, args: list[str], cwd: Path) -> float:
    began = time.perf_counter()
    subprocess.run([gangline, *args], cwd=cwd, check=True, capture_output=True, env=_env())
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("gangline", nargs="+")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--items", type=int, default=100)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        repos = {g: project(Path(tmp) / str(n), g, options.items) for n, g in enumerate(options.gangline)}
        seconds: dict[tuple[str, str], list[float]] = {}
        for _ in range(options.runs):
            for gangline, repo in repos.items():
                for args in COMMANDS:
                    seconds.setdefault((gangline, " ".join(args)), []).append(once(gangline, args, repo))
    figures = {
        f"{gangline} {command}": {
            "median_s": round(statistics.median(runs), 3),
            "min_s": round(min(runs), 3),
            "max_s": round(max(runs), 3),
        }
        for (gangline, command), runs in seconds.items()
    }
    print(json.dumps({"runs": options.runs, "items": options.items, "figures": figures}, indent=2))


if __name__ == "__main__":
    main()
