"""A real project for pipeline tests: a git repo in a temp dir, project.toml, scripted fake agents."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gangline.core.items import Item, ItemDraft
from gangline.core.profiles import RunnerSettings
from gangline.core.stages import Stage
from gangline.pipeline.orchestrator import Orchestrator
from gangline.project.config import ProjectConfig, load_project_text
from gangline.project.paths import ProjectPaths
from gangline.store import Store, open_sqlite, open_store
from kits.helpers import git

FAST = RunnerSettings(inactivity_timeout_s=30, kill_grace_s=0.5, drain_timeout_s=2)
# Where projects made from now on keep their state: None, their own SQLite file; else a database URL
# (PostgreSQL), written into their project.toml so a server started on them opens it too. Set for
# a test by the ``project_database`` fixture (kits.postgres), which closes what they opened.
DATABASE_URL: str | None = None
OPENED: list[Store] | None = None  # the stores projects opened under that fixture (None: outside it)
Step = dict[str, Any]


class Project:
    """One repository with gangline set up in it; ``agent()`` and ``configure()`` script it."""

    def __init__(self, root: Path) -> None:
        self.root = root / "repo"
        self.root.mkdir()
        git(self.root, "init", "-q", "-b", "main")
        git(self.root, "config", "user.name", "Person")
        git(self.root, "config", "user.email", "person@example.invalid")
        (self.root / "README.md").write_text("# project\n")
        (self.root / ".gitignore").write_text(".gangline/\n")
        git(self.root, "add", "-A")
        git(self.root, "commit", "-q", "-m", "initial")
        self.paths = ProjectPaths(self.root)
        self.scenarios = root / "scenarios"
        self.scenarios.mkdir()
        self.agents: list[str] = []
        self.config: ProjectConfig | None = None
        self.database_url = DATABASE_URL
        self.store: Store = open_store(self.database_url) if self.database_url else open_sqlite(self.paths.db_file)
        if OPENED is not None:
            OPENED.append(self.store)

    def agent(self, name: str, attempts: Sequence[Sequence[Step]], role: str = "coder", **fields: Any) -> None:
        scenario = self.scenarios / f"{name}.json"
        scenario.write_text(json.dumps({"attempts": attempts}))
        self.add_agent(
            {"name": name, "role": role, "cli": "fake", "extra_args": ["--scenario", str(scenario)], **fields}
        )

    def add_agent(self, table: dict[str, Any]) -> None:
        self.agents.append("[[agent]]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in table.items()))

    def configure(self, gates: Sequence[tuple[str, str]] = (), tables: str = "", **settings: Any) -> ProjectConfig:
        """Write project.toml: ``settings`` as keys (a dict is a table), the gates, ``tables`` (TOML), the agents.

        The scenarios' folder is shown writable in the sandbox: tests have agents and gates leave what they
        saw there.
        """
        settings.setdefault("sandbox_writable", [str(self.scenarios)])
        if self.database_url is not None:
            settings.setdefault("database_url", self.database_url)
        lines = [f"{k} = {json.dumps(v)}" for k, v in settings.items() if not isinstance(v, dict)]
        for key, table in settings.items():
            if isinstance(table, dict):
                lines.append(f"[{key}]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in table.items()))
        for name, command in gates:
            lines.append(f"[[gate]]\nname = {json.dumps(name)}\ncommand = {json.dumps(command)}\ntimeout_s = 60\n")
        text = "\n".join(lines) + "\n" + tables + "\n" + "\n".join(self.agents)
        self.paths.state_dir.mkdir(exist_ok=True)
        self.paths.config_file.write_text(text)
        self.config = load_project_text(text, str(self.paths.config_file), os.environ)
        return self.config

    def orchestrator(self, **kwargs: Any) -> Orchestrator:
        assert self.config is not None, "configure() first"
        return Orchestrator(self.paths, self.config, self.store, dict(os.environ), settings=FAST, **kwargs)

    def add(self, title: str, **fields: Any) -> Item:
        return self.store.create_item(ItemDraft.model_validate({"title": title, **fields}), "person")

    async def run_until_idle(self, timeout_s: float = 90, **kwargs: Any) -> Orchestrator:
        orch = self.orchestrator(**kwargs)
        await asyncio.wait_for(orch.serve(until_idle=True), timeout_s)
        return orch

    def item(self, item_id: int) -> Item:
        return self.store.get_item(item_id)

    def stage(self, item_id: int) -> Stage:
        return self.item(item_id).stage

    def base_log(self) -> list[str]:
        return git(self.root, "log", "--format=%s", "main").splitlines()

    def base_file(self, path: str) -> str:
        return git(self.root, "show", f"main:{path}")

    def prompts(self, item_id: int) -> list[str]:
        """The prompt each of the item's runs was started with (from the durable run logs)."""
        from gangline.agents.runlog import replay
        from gangline.core.events import ProcessStarted

        found = []
        for run in self.store.runs(item_id):
            for record in replay(Path(run.log_path)):
                if isinstance(record.event, ProcessStarted):
                    argv = record.event.argv
                    found.append(argv[argv.index("-p") + 1])
        return found


PYTHON = sys.executable


def _toml(value: Any) -> str:
    if isinstance(value, dict):  # an inline table
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)


def commit_file(path: str, text: str, message: str = "work on {item_slug}") -> list[Step]:
    return [{"write": path, "text": text}, {"commit": message}]
