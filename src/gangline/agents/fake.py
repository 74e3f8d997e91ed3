"""The fake agent CLI shipped in this package (``gangline.fake``), launched as Claude Code is."""

from __future__ import annotations

import sys

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

    def command(self, profile: AgentProfile, prompt: str, resume_session_id: str | None) -> list[str]:
        if profile.command:
            argv = [resolve_binary(profile, profile.command)]
        else:
            argv = [resolve_binary(profile, sys.executable), "-m", "gangline.fake.cli"]
        if resume_session_id:
            argv += ["--resume", resume_session_id]
        argv += ["-p", safe_prompt(prompt)]
        return argv + list(profile.extra_args)
