"""``gangline demo``: one agent on a throwaway git repository, rendered live."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

from rich.console import Console

from gangline.bus import Bus, Subscription
from gangline.config import AgentProfile, CliKind, RunnerSettings
from gangline.render import Renderer
from gangline.runner import Runner, RunRequest, RunSummary

DEMO_PROMPT = (
    "Create hello.py that prints 'hello from gangline', run it once to check it works, and commit it with git."
)
_CREDENTIAL_VARS = ("ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN", "ANTHROPIC_AUTH_TOKEN")


def claude_is_configured(env: Mapping[str, str]) -> bool:
    """The real CLI is installed and has some way to authenticate."""
    if shutil.which("claude", path=env.get("PATH")) is None:
        return False
    if any(env.get(name) for name in _CREDENTIAL_VARS):
        return True
    home = Path(env.get("CLAUDE_CONFIG_DIR") or Path(env.get("HOME", "~")).expanduser() / ".claude")
    return (home / ".credentials.json").is_file()


def make_repo(root: Path) -> Path:
    repo = root / "repo"
    repo.mkdir()

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)

    git("init", "-q", "-b", "main")
    git("config", "user.name", "gangline demo")
    git("config", "user.email", "demo@gangline.invalid")
    (repo / "README.md").write_text("# demo\n\nA throwaway repository for `gangline demo`.\n")
    git("add", "README.md")
    git("commit", "-q", "-m", "initial commit")
    return repo


def demo_profile(agent: CliKind, rate: float, model: str) -> AgentProfile:
    if agent is CliKind.CLAUDE:
        # A real agent spends real money: keep the demo's turns and budget small.
        return AgentProfile(name="demo-claude", cli=agent, model=model, max_turns=8, max_budget_usd=0.5)
    return AgentProfile(name="demo-fake", cli=agent, extra_args=("--rate", f"{rate:g}"))


async def _render(sub: Subscription, renderer: Renderer) -> None:
    async for record in sub:
        renderer.render(record)


async def run_demo(console: Console, agent: CliKind, rate: float, model: str, env: Mapping[str, str]) -> RunSummary:
    root = Path(tempfile.mkdtemp(prefix="gangline-demo-"))
    repo = make_repo(root)
    console.print(f"[bold]gangline demo[/] · agent [cyan]{agent.value}[/] · repository {repo}")
    runner = Runner(RunnerSettings(), root / ".gangline" / "runs", env)
    bus = Bus()
    renderer = Renderer(console)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(_render(bus.subscribe(), renderer))
        summary = await runner.run(RunRequest("demo-1", demo_profile(agent, rate, model), DEMO_PROMPT, repo), bus)
    log = subprocess.run(["git", "log", "--oneline"], cwd=repo, capture_output=True, text=True).stdout
    console.print(f"[dim]git log:[/]\n{log.rstrip()}")
    console.print(f"[dim]event log: {summary.log_path} ({summary.last_event_id} events)[/]")
    return summary
