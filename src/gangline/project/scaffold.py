"""``gangline init``: write ``.gangline/`` (settings, ignore rules, the agents' guide) into a repository."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from gangline.core.errors import ConfigError
from gangline.core.guide import GUIDE
from gangline.project.config import load_project_text
from gangline.project.paths import ProjectPaths, find_root, git_output, shown
from gangline.project.template import Choices, GateChoice, gate_block, project_toml


@dataclass(frozen=True)
class InitResult:
    root: Path
    created: list[Path]  # files written; an existing file is never replaced
    base_branch: str


GITIGNORE = """\
# gangline's runtime state (the database, runs, worktrees, hooks, secrets, the server file, and
# whatever later versions write) is local to this machine: everything here is ignored but the
# files meant to be committed.
*
!.gitignore
!project.toml
!guide.md
"""
# What earlier versions wrote: replaced by GITIGNORE when a server opens the project.
_OLD_GITIGNORES = (
    "# gangline's runtime state: local to this machine, never committed.\n"
    "# project.toml and guide.md are meant to be committed.\n"
    "state.db*\nruns/\nworktrees/\nmerge/\ngates/\n*.lock\n",
)
MCP_JSON = ".mcp.json"  # a project's MCP servers, as Claude Code and other MCP clients read them
MCP_NAME = "gangline"


@dataclass(frozen=True)
class Prepared:
    """A repository made ready for its ``project.toml``: ``.gangline/`` with its ignore rules and guide."""

    root: Path
    paths: ProjectPaths
    base_branch: str
    created: list[Path]


def prepare(start: Path) -> Prepared:
    """Create ``.gangline/`` in the repository holding ``start``; refuse if it is already set up."""
    root = _work_tree_root(start)
    paths = ProjectPaths(root)
    if paths.config_file.exists():
        raise ConfigError(str(root), f"already initialised; edit {paths.config_file} instead")
    # A repository without commits still has a current branch; only a detached HEAD has none.
    base_branch = git_output(root, "symbolic-ref", "--short", "-q", "HEAD") or "main"
    try:
        paths.state_dir.mkdir(exist_ok=True)
    except OSError as err:
        raise ConfigError(str(paths.state_dir), f"cannot create the directory: {err.strerror or err}") from None
    created = []
    for path, body in ((paths.state_dir / ".gitignore", GITIGNORE), (paths.guide_file, GUIDE)):
        if _write_new(path, body):
            created.append(path)
    return Prepared(root, paths, base_branch, created)


def write_config(prepared: Prepared, choices: Choices, env: Mapping[str, str]) -> InitResult:
    """Write ``project.toml`` for ``choices``, last: its presence means the rest was written too."""
    paths = prepared.paths
    text = project_toml(choices)
    load_project_text(text, str(paths.config_file), env)  # never write a file that would not load
    if not _write_new(paths.config_file, text):
        raise ConfigError(str(prepared.root), f"already initialised; edit {paths.config_file} instead")
    return InitResult(prepared.root, [*prepared.created, paths.config_file], prepared.base_branch)


def init_project(start: Path, env: Mapping[str, str]) -> InitResult:
    """``gangline init`` taking every default: no gates, a Claude Code coder, QA by the server."""
    prepared = prepare(start)
    return write_config(prepared, Choices(prepared.base_branch), env)


def free_gate_name(paths: ProjectPaths, name: str, env: Mapping[str, str]) -> str:
    """``project.toml`` as it is now; ConfigError when it does not load or already has a gate named ``name``."""
    path = paths.config_file
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(shown(path), f"cannot be read: {err.strerror or err}") from None
    current = load_project_text(text, shown(path), env)
    if any(existing.name == name for existing in current.gates):
        raise ConfigError("name", f"{shown(path)} already has a gate named {name!r}; choose another name")
    return text


def append_gate(paths: ProjectPaths, gate: GateChoice, env: Mapping[str, str]) -> None:
    """Add ``gate`` at the end of ``project.toml`` (a person's edits and comments stay as they are).

    Refused, changing nothing, when a gate of that name is there already or the result would not load.
    """
    path = paths.config_file
    updated = free_gate_name(paths, gate.name, env).rstrip("\n") + "\n\n" + gate_block(gate)
    load_project_text(updated, shown(path), env)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        temp.write_text(updated, encoding="utf-8")
        os.replace(temp, path)  # whole or not at all: a server reading it never sees half a file
    except OSError as err:
        temp.unlink(missing_ok=True)
        raise ConfigError(shown(path), f"cannot be written: {err.strerror or err}") from None


def write_mcp_json(root: Path, server: dict[str, object]) -> str:
    """Name gangline in ``root/.mcp.json`` (what the person's own MCP client reads); what was done, in words.

    An existing file keeps every other server; one that already names gangline, or that is no
    JSON object, is left as it is.
    """
    path = root / MCP_JSON
    if not path.exists():
        _write_new(path, json.dumps({"mcpServers": {MCP_NAME: server}}, indent=2) + "\n")
        return f"created {MCP_JSON}"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        return f"left {MCP_JSON} alone: it is not JSON ({err})"
    servers = data.get("mcpServers") if isinstance(data, dict) else None
    if not isinstance(data, dict) or not isinstance(servers, dict | None):
        return f'left {MCP_JSON} alone: expected a JSON object with an "mcpServers" object'
    if MCP_NAME in (servers or {}):
        return f'left {MCP_JSON} alone: it already has a "{MCP_NAME}" server'
    data["mcpServers"] = {**(servers or {}), MCP_NAME: server}
    temp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    temp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(temp, path)
    return f'added the "{MCP_NAME}" server to {MCP_JSON}'


def refresh_gitignore(paths: ProjectPaths) -> bool:
    """Write ``.gangline/.gitignore`` if it is missing or one an earlier gangline wrote; a person's own edit stays."""
    path = paths.state_dir / ".gitignore"
    try:
        current = path.read_text(encoding="utf-8") if path.exists() else None
    except OSError:
        return False
    if current is not None and current not in _OLD_GITIGNORES:
        return False
    if current is not None:
        path.unlink()
    return _write_new(path, GITIGNORE)


def _work_tree_root(start: Path) -> Path:
    if git_output(start, "rev-parse", "--is-bare-repository") == "true":
        raise ConfigError(str(start), "is a bare git repository; run gangline init in a clone with a working tree")
    if git_output(start, "rev-parse", "--is-inside-work-tree") == "false":
        raise ConfigError(str(start), "is inside a .git directory; run gangline init in the working tree")
    return find_root(start)


def _write_new(path: Path, text: str) -> bool:
    """Write ``path`` whole or not at all; False, writing nothing, when it already exists."""
    if path.exists():
        return False
    temp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        with open(temp, "x", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        # Unlike a rename, a hard link never replaces a file that appeared in the meantime.
        os.link(temp, path)
    except FileExistsError:
        return False
    except OSError as err:
        raise ConfigError(str(path), f"cannot be written: {err.strerror or err}") from None
    finally:
        temp.unlink(missing_ok=True)
    return True
