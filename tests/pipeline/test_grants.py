"""The per-run MCP configuration in a worktree: what git sees of it, whatever a kill left."""

from __future__ import annotations

from pathlib import Path

from gangline.pipeline.grants import CONFIG_NAME, remove_mcp_config, write_mcp_config
from kits.helpers import git


async def test_the_config_a_killed_server_left_half_written_is_never_a_change_and_goes_with_the_next(
    repo: Path,
) -> None:
    # A server killed while it wrote the file leaves its temporary copy (it holds a token) in the worktree.
    leftover = repo / f"{CONFIG_NAME}.4242.tmp"
    leftover.write_text('{"token": "revoked"}')
    assert (await write_mcp_config(repo, "http://127.0.0.1:1/mcp", "secret")).exists()
    # Neither is a change an agent would be asked to commit, nor one `git add -A` would take.
    assert git(repo, "status", "--porcelain", "--untracked-files=all") == ""
    remove_mcp_config(repo)
    assert sorted(p.name for p in repo.iterdir()) == [".git"]
