"""Every agent CLI gangline drives, by kind: adding one is a module of its own and one line here."""

from __future__ import annotations

from gangline.agents.adapter import AgentAdapter
from gangline.agents.claude import ClaudeAdapter
from gangline.agents.codex import CodexAdapter
from gangline.agents.fake import FakeAdapter
from gangline.agents.gemini import GeminiAdapter
from gangline.core.profiles import CliKind

ADAPTERS: dict[CliKind, AgentAdapter] = {
    CliKind.CLAUDE: ClaudeAdapter(),
    CliKind.CODEX: CodexAdapter(),
    CliKind.GEMINI: GeminiAdapter(),
    CliKind.FAKE: FakeAdapter(),
}
