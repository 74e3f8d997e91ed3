"""``gangline demo``: a small backlog taken through the whole pipeline on a throwaway git repository, live."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

from rich.console import Console

from gangline.config import CliKind
from gangline.fake_cli import shipped_scenario
from gangline.items import ItemDraft, Kind
from gangline.narrate import follow_pipeline, inert, items_table, money
from gangline.orchestrator import Orchestrator
from gangline.project import ProjectPaths, load_project_text
from gangline.prompts import GUIDE
from gangline.stages import Stage
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


def demo_config(agent: CliKind, model: str, scenario_state: Path) -> str:
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
        agents = [_fake(role, scenario_state) for role in ("coder", "qa", "mergemaster")]
    lines = ['base_branch = "main"', *(f"{k} = {json.dumps(v)}" for k, v in settings.items()), ""]
    lines.append("[concurrency]\ncoder = 2\n")
    for name, command in gates:
        lines.append(f"[[gate]]\nname = {json.dumps(name)}\ncommand = {json.dumps(command)}\ntimeout_s = 60\n")
    for table in agents:
        lines.append("[[agent]]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in table.items()))
    return "\n".join(lines)


def _fake(role: str, scenario_state: Path) -> dict[str, object]:
    scenario = shipped_scenario(f"{role}.json")
    args = ["--scenario", str(scenario), "--scenario-state", str(scenario_state / role)]
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
            body="Read the repository and write `NOTES.md` with three things a newcomer would want added.",
            criteria=("`NOTES.md` lists three suggestions",),
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


async def run_demo(console: Console, agent: CliKind, model: str, env: Mapping[str, str]) -> bool:
    """Run the demo backlog to the end, narrating it; True when every item reached done."""
    root = Path(tempfile.mkdtemp(prefix="gangline-demo-"))
    repo = make_repo(root)
    paths = ProjectPaths(repo)
    paths.state_dir.mkdir()
    text = demo_config(agent, model, root / "scenario-state")
    paths.config_file.write_text(text, encoding="utf-8")
    config = load_project_text(text, str(paths.config_file), env)
    console.print(f"[bold]gangline demo[/] · agent [cyan]{agent.value}[/] · repository {inert(str(repo))}")
    store = open_sqlite(paths.db_file)
    try:
        demo_backlog(store)
        orch = Orchestrator(paths, config, store, env, guide=GUIDE)
        async with asyncio.TaskGroup() as tg:
            narrator = tg.create_task(follow_pipeline(orch, console))
            try:
                await orch.serve(until_idle=True)
            finally:
                narrator.cancel()
        done = _summarise(console, store, repo)
        if agent is CliKind.FAKE:
            console.print("[dim]The fake agents report what the runs would cost at list price; nothing was spent.[/]")
        return done
    finally:
        store.close()


def _summarise(console: Console, store: Store, repo: Path) -> bool:
    items = store.list_items()
    costs = {int(row.key): row.cost_usd for row in store.ledger("item")}
    console.print()
    console.print(items_table(items, costs, title="Board"))
    log = subprocess.run(["git", "log", "--oneline", "main"], cwd=repo, capture_output=True, text=True).stdout
    console.print(f"[bold]git log --oneline main[/]\n{inert(log.rstrip(), multiline=True)}")
    console.print(f"Total cost: {money(sum(costs.values())) if any(costs.values()) else '$0'}")
    done = all(item.stage in (Stage.DONE, Stage.ARCHIVED) for item in items)
    console.print("[green]Every item reached done.[/]" if done else "[yellow]Some items did not reach done.[/]")
    return done
