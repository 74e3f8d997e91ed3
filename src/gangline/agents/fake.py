"""The fake agent CLI shipped in this package (``gangline.fake``), launched as Claude Code is."""

from __future__ import annotations

import sys
from pathlib import Path

from gangline.agents.adapter import FlagCheck, McpAccess, resolve_binary, safe_prompt
from gangline.agents.claude import ClaudeAdapter
from gangline.core.profiles import AgentProfile, CliKind


class FakeAdapter(ClaudeAdapter):
    """The fake CLI shipped in this package (``gangline.fake.cli``), which speaks stream-json.

    Its behaviour (transcript, rate, exit code, hang, ...) comes from ``profile.extra_args``.
    """

    kind = CliKind.FAKE
    binary = "gangline-fake-agent"
    install = "it ships with gangline"

    def with_mcp(self, profile: AgentProfile, access: McpAccess) -> AgentProfile:
        return profile  # the fake CLI speaks no MCP

    def flags(self, profile: AgentProfile) -> list[FlagCheck]:
        return []

    def state_dirs(self, profile: AgentProfile) -> tuple[Path, ...]:
        """Where its attempt counters live: ``--scenario-state DIR``, or ``<scenario>.state`` beside the scenario."""
        args = list(profile.extra_args)
        named = {flag: args[i + 1] for i, flag in enumerate(args[:-1]) if flag in ("--scenario", "--scenario-state")}
        if "--scenario-state" in named:
            folder = Path(named["--scenario-state"])
        elif "--scenario" in named:
            folder = Path(f"{Path(named['--scenario']).absolute()}.state")
        else:
            return ()
        folder.mkdir(parents=True, exist_ok=True)  # the sandbox shows it where it is: it must exist
        return (folder,)

    def command(self, profile: AgentProfile, prompt: str, resume_session_id: str | None) -> list[str]:
        if profile.command:
            argv = [resolve_binary(profile, profile.command)]
        else:
            argv = [resolve_binary(profile, sys.executable), "-m", "gangline.fake.cli"]
        if resume_session_id:
            argv += ["--resume", resume_session_id]
        argv += ["-p", safe_prompt(prompt)]
        return argv + list(profile.extra_args)
