"""``gangline demo``: a small backlog taken through the whole pipeline on a throwaway git repository, live."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from gangline.cli.narrate import follow_pipeline
from gangline.cli.tables import items_table
from gangline.cli.text import inert, money
from gangline.core.items import ItemDraft, Kind
from gangline.core.profiles import CliKind
from gangline.core.stages import Stage
from gangline.core.wire import ItemQuery
from gangline.fake.cli import shipped_scenario
from gangline.pipeline.orchestrator import Orchestrator
from gangline.pipeline.views import Views
from gangline.project.config import load_project_text
from gangline.project.paths import ProjectPaths
from gangline.server.serving import Listen, serve_project
from gangline.store import Store, open_sqlite

_CREDENTIAL_VARS = ("ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN", "ANTHROPIC_AUTH_TOKEN")
ACTOR = "demo"
# Shell commands the real coder may run without asking; edits are accepted by its permission mode.
_CLAUDE_TOOLS = ["Bash(git status:*)", "Bash(git diff:*)", "Bash(git log:*)", "Bash(git add:*)",
                 "Bash(git commit:*)", "Bash(python3:*)", "Bash(ls:*)", "Bash(cat:*)"]  # fmt: skip
_PY_SYNTAX = "python3 -c 'import ast, sys; [ast.parse(open(f).read(), f) for f in sys.argv[1:]]' $(git ls-files '*.py')"


def claude_is_configured(env: Mapping[str, str]) -> bool:
    """The real CLI is installed and has some way to authenticate."""
    if shutil.which("claude", path=env.get("PATH")) is None:
        return False
    if any(env.get(name) for name in _CREDENTIAL_VARS):
        return True
    home = Path(env.get("CLAUDE_CONFIG_DIR") or Path(env.get("HOME", "~")).expanduser() / ".claude")
    return (home / ".credentials.json").is_file()


def make_repo(root: Path) -> Path:
    """A git repository on ``main`` with one commit; gangline's state directory is ignored."""
    repo = root / "repo"
    repo.mkdir()

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)

    git("init", "-q", "-b", "main")
    git("config", "user.name", "gangline demo")
    git("config", "user.email", "demo@gangline.invalid")
    # "teh" is the bug the demo backlog asks an agent to fix.
    (repo / "README.md").write_text("# demo\n\nA throwaway repository for teh `gangline demo`.\n")
    (repo / ".gitignore").write_text(".gangline/\n")
    git("add", "README.md", ".gitignore")
    git("commit", "-q", "-m", "initial commit")
    return repo


def demo_config(agent: CliKind, model: str, scenario_state: Path, pace_s: float = 0.0) -> str:
    """project.toml for the demo: cheap real agents, or the shipped fake scenarios with an agent QA."""
    if agent is CliKind.CLAUDE:
        # A real agent spends real money: few turns, a small budget per run, one retry, no QA agent.
        settings = {"max_retries": 1, "qa_mode": "server"}
        gates = [("clean", "git diff --quiet HEAD"), ("python", _PY_SYNTAX)]
        coder = {"name": "coder", "role": "coder", "cli": "claude", "model": model, "max_turns": 8,
                 "max_budget_usd": 0.5, "permission_mode": "acceptEdits", "allowed_tools": _CLAUDE_TOOLS}  # fmt: skip
        agents = [coder]
    else:
        settings = {"max_retries": 2, "qa_mode": "agent"}
        gates = [("notes", 'test -n "$(git ls-files notes)"')]
        agents = [_fake(role, scenario_state, pace_s) for role in ("coder", "qa", "mergemaster")]
    lines = ['base_branch = "main"', *(f"{k} = {json.dumps(v)}" for k, v in settings.items()), ""]
    lines.append("[concurrency]\ncoder = 2\n")
    for name, command in gates:
        lines.append(f"[[gate]]\nname = {json.dumps(name)}\ncommand = {json.dumps(command)}\ntimeout_s = 60\n")
    for table in agents:
        lines.append("[[agent]]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in table.items()))
    return "\n".join(lines)


def _fake(role: str, scenario_state: Path, pace_s: float) -> dict[str, object]:
    scenario = shipped_scenario(f"{role}.json")
    args = ["--scenario", str(scenario), "--scenario-state", str(scenario_state / role)]
    if pace_s > 0:
        args += ["--pace", f"{pace_s:g}"]
    return {"name": f"fake-{role}", "role": role, "cli": "fake", "extra_args": args}


def demo_backlog(store: Store) -> None:
    """Four items: a story, a bug, a spike, and a story that waits for the first one."""
    drafts = [
        ItemDraft(
            kind=Kind.STORY,
            title="Add a greeting script",
            priority=1,
            body="Create `hello.py` that prints `hello from gangline`.",
            criteria=("`python3 hello.py` prints `hello from gangline`",),
        ),
        ItemDraft(
            kind=Kind.BUG,
            title="Fix the typo in the README",
            body="The README says `teh` where it means `the`.",
            criteria=("The README says `the`",),
        ),
        ItemDraft(
            kind=Kind.SPIKE,
            title="List what a newcomer would miss",
            body="Read the repository and report three things a newcomer would want added (a spike: the report "
            "is the result, nothing is merged).",
            criteria=("The report lists three suggestions",),
        ),
    ]
    first = store.create_item(drafts[0], ACTOR)
    for draft in drafts[1:]:
        store.create_item(draft, ACTOR)
    store.create_item(
        ItemDraft(
            kind=Kind.STORY,
            title="Greet by name",
            depends_on=(first.id,),
            body="Let `hello.py` take an optional name: `python3 hello.py Ada` prints `hello, Ada`.",
            criteria=("`python3 hello.py Ada` prints `hello, Ada`",),
        ),
        ACTOR,
    )


_FAKE_COST_NOTE = "The fake agents report what the runs would cost at list price; nothing was spent."


@dataclass(frozen=True)
class DemoOptions:
    agent: CliKind
    model: str
    port: int = 0  # 0: any free port
    pace_s: float = 0.0  # the fake agents' pause before each step, so a person can watch the board
    exit_when_done: bool = False  # else the board stays up after the backlog is done, until Ctrl-C


@dataclass
class DemoResult:
    """Set as soon as the backlog is through, so a Ctrl-C that closes the board after it can tell."""

    finished: bool = False  # the pipeline had nothing left to do
    all_done: bool = False  # and every item reached done


async def run_demo(console: Console, options: DemoOptions, env: Mapping[str, str], result: DemoResult) -> None:
    """Serve the board and take the demo backlog through it, narrating; ``result`` says how it went."""
    root = Path(tempfile.mkdtemp(prefix="gangline-demo-"))
    repo = make_repo(root)
    paths = ProjectPaths(repo)
    paths.state_dir.mkdir()
    text = demo_config(options.agent, options.model, root / "scenario-state", options.pace_s)
    paths.config_file.write_text(text, encoding="utf-8")
    config = load_project_text(text, str(paths.config_file), env)
    console.print(f"[bold]gangline demo[/] · agent [cyan]{options.agent.value}[/] · repository {inert(str(repo))}")
    with closing(open_sqlite(paths.db_file)) as store:
        demo_backlog(store)
    board: list[str] = []

    def ready(url: str, login: str | None) -> None:
        board.append(f"{url}/")
        shown = login or f"{url}/"
        console.print(
            f"The board: [bold link={shown}]{shown}[/]  (open it to watch the pipeline move; it signs you in once)"
        )

    async def watch(orch: Orchestrator) -> None:
        narrator = asyncio.create_task(follow_pipeline(orch, console))
        try:
            await orch.wait_idle()
        finally:
            narrator.cancel()
            await asyncio.wait({narrator})
        result.finished, result.all_done = True, _summarise(console, orch.store, repo)
        if options.agent is CliKind.FAKE:
            console.print(f"[dim]{_FAKE_COST_NOTE}[/]")
        if not options.exit_when_done:
            console.print(f"The board stays up at {board[0]} · press Ctrl-C to stop.")
            await asyncio.Event().wait()

    await serve_project(paths, config, env, Listen(port=options.port, nodes=False), ready, watch)


def _summarise(console: Console, store: Store, repo: Path) -> bool:
    items = Views(store).items(ItemQuery(include_archived=True))
    console.print()
    console.print(items_table(items, title="Board"))
    log = subprocess.run(["git", "log", "--oneline", "main"], cwd=repo, capture_output=True, text=True).stdout
    console.print(f"[bold]git log --oneline main[/]\n{inert(log.rstrip(), multiline=True)}")
    total = sum(item.cost_usd for item in items)
    console.print(f"Total cost: {money(total) if total else '$0'}")
    # A spike ends with its report held for a person to read: that is where the demo leaves it.
    reports = [item for item in items if item.kind is Kind.SPIKE and item.stage is Stage.QA and item.report]
    done = all(item.stage in (Stage.DONE, Stage.ARCHIVED) or item in reports for item in items)
    for spike in reports:
        console.print(f"Spike #{spike.id}'s report waits for you: read it on the board, then `gangline close "
                      f"{spike.id}`.")  # fmt: skip
    if not done:
        console.print("[yellow]Some items did not reach done.[/]")
    else:
        ready = ", and each spike's report is ready" if reports else ""
        console.print(f"[green]Every item reached done{ready}.[/]")
    return done
