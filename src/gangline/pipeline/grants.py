"""Per-run MCP grants: a token bound to one run's item and worktree, and the config file that hands it to the agent."""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from gangline.agents.adapter import McpAccess, write_private
from gangline.agents.registry import ADAPTERS
from gangline.core.profiles import AgentProfile, CliKind, Role
from gangline.repo.git import git

SERVER_NAME = "gangline"  # the MCP server's name in the agent's config: its tools are mcp__gangline__<tool>
PERMISSION_TOOL = f"mcp__{SERVER_NAME}__prompt_permission"
CONFIG_NAME = ".gangline-mcp.json"  # written into the run's worktree, excluded from git
_LOOPBACK_FOR = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "[::1]"}  # a wildcard bind, as an agent dials it


@dataclass(frozen=True)
class Grant:
    """What one run's token reaches: its own item and its own worktree, nothing else."""

    run_id: str
    item_id: int
    role: Role
    worktree: Path

    @property
    def actor(self) -> str:
        return f"agent:{self.run_id}"


@dataclass(frozen=True)
class ChatGrant:
    """What a chat agent's token reaches: the people's tools (as the agent), and its own directory."""

    run_id: str
    worktree: Path  # its own directory, which the permission rules read paths against

    @property
    def actor(self) -> str:
        return f"agent:{self.run_id}"


AnyGrant = Grant | ChatGrant


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class Grants:
    """The live runs' tokens, in memory only: runs do not survive a restart, so neither do their tokens.

    Tokens are looked up by their SHA-256, so a lookup's timing says nothing about a token.
    """

    def __init__(self) -> None:
        self._by_digest: dict[bytes, AnyGrant] = {}
        self._digest_of: dict[str, bytes] = {}
        self.on_revoke: list[Callable[[AnyGrant], None]] = []  # e.g. end the run's pending permission questions

    def issue(self, run_id: str, item_id: int | None, role: Role, worktree: Path) -> str:
        """A new token for the run (replacing any it had); the caller revokes it when the run ends.

        A run with no item (``item_id`` None) is a chat agent's: its token gets a ChatGrant.
        """
        self.revoke(run_id)
        token = secrets.token_urlsafe(32)
        digest = _digest(token)
        self._by_digest[digest] = (
            Grant(run_id, item_id, role, worktree) if item_id is not None else ChatGrant(run_id, worktree)
        )
        self._digest_of[run_id] = digest
        return token

    def resolve(self, token: str) -> AnyGrant | None:
        return self._by_digest.get(_digest(token))

    def is_live(self, grant: AnyGrant) -> bool:
        digest = self._digest_of.get(grant.run_id)
        return digest is not None and self._by_digest.get(digest) == grant

    def revoke(self, run_id: str) -> None:
        digest = self._digest_of.pop(run_id, None)
        grant = self._by_digest.pop(digest, None) if digest is not None else None
        if grant is not None:
            for listener in self.on_revoke:
                listener(grant)

    def live(self) -> list[AnyGrant]:
        return list(self._by_digest.values())


def agent_mcp_url(server_url: str) -> str:
    """The MCP endpoint as an agent on this machine reaches it: a wildcard bind becomes loopback."""
    parts = urlsplit(server_url)
    netloc = parts.netloc
    loopback = _LOOPBACK_FOR.get(parts.hostname or "")
    if loopback is not None:
        netloc = f"{loopback}:{parts.port}" if parts.port else loopback
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/") + "/mcp", "", ""))


def mcp_config(url: str, token: str) -> dict[str, object]:
    """Claude Code's ``--mcp-config`` for gangline's server, authorised by the run's token."""
    server = {"type": "http", "url": url, "headers": {"Authorization": f"Bearer {token}"}}
    return {"mcpServers": {SERVER_NAME: server}}


async def launched_with_mcp(
    profile: AgentProfile, cwd: Path, url: str, token: str, settings: Path, *, in_git: bool
) -> AgentProfile:
    """``profile`` as launched to reach gangline's MCP server at ``url`` as the run ``token`` is for.

    Claude Code (and the fake CLI) read ``.gangline-mcp.json`` in ``cwd``; ``settings`` is a private
    file outside it for a CLI that keeps its MCP settings in one (Gemini's).
    """
    in_file = profile.cli in (CliKind.CLAUDE, CliKind.FAKE)
    config = await write_mcp_config(cwd, url, token, in_git=in_git) if in_file else None
    return ADAPTERS[profile.cli].with_mcp(profile, McpAccess(url, token, settings, config, PERMISSION_TOOL))


async def write_mcp_config(worktree: Path, url: str, token: str, *, in_git: bool = True) -> Path:
    """Write ``.gangline-mcp.json`` into the worktree (mode 0600) and make git ignore it there.

    A file, not an inline JSON argument: argv is visible in ``ps`` and recorded in the run log,
    and the token is a secret. ``in_git`` False: a directory of a chat agent's, no git there.
    """
    if in_git:  # the file, and the temporary copy it is written through, which a kill can leave behind
        await exclude_from_git(worktree, f"{CONFIG_NAME}*")
    path = worktree / CONFIG_NAME
    write_private(path, json.dumps(mcp_config(url, token)))
    return path


def remove_mcp_config(worktree: Path) -> None:
    """Delete the run's config file, and any temporary copy a killed server left; their tokens are revoked
    anyway, this only tidies the worktree."""
    with contextlib.suppress(OSError):  # a worktree removed meanwhile: nothing left to tidy
        for path in (worktree / CONFIG_NAME, *worktree.glob(f"{CONFIG_NAME}.*.tmp")):
            path.unlink(missing_ok=True)


async def exclude_from_git(worktree: Path, pattern: str) -> None:
    """List ``/pattern`` once in the repository's shared ``info/exclude``, so no worktree sees or commits it.

    The shared one (``git rev-parse --git-common-dir``), not the worktree's own: git reads
    ``info/exclude`` from the common directory only, and one line there covers every worktree,
    the merge workspace included. ``git status`` then never reports the file, so the
    "uncommitted changes" checks do not see it and ``git add -A`` does not pick it up.
    """
    common = (await git(worktree, "rev-parse", "--git-common-dir")).stdout.strip()
    exclude = (worktree / common).resolve() / "info" / "exclude"
    line = f"/{pattern}"
    try:
        present = line in exclude.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        present = False
    if present:
        return
    exclude.parent.mkdir(parents=True, exist_ok=True)
    with exclude.open("a", encoding="utf-8") as out:
        if exclude.stat().st_size and not exclude.read_bytes().endswith(b"\n"):
            out.write("\n")
        out.write(f"# gangline: the per-run MCP configuration (holds a secret token)\n{line}\n")
