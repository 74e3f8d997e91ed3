"""What ``gangline doctor`` checks: git, the repository, project.toml, the sandbox, each agent, the database,
chat, the port, the disk."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import subprocess
from collections.abc import Mapping
from pathlib import Path

from gangline.agents import homes
from gangline.agents.adapter import resolve_binary
from gangline.agents.registry import ADAPTERS
from gangline.agents.sandbox import INSTALL, bwrap_path
from gangline.core.disk import disk_line
from gangline.core.errors import GanglineError
from gangline.core.outcome import fix_for
from gangline.core.profiles import AgentProfile, CliKind, PermissionMode, SandboxMode
from gangline.core.records import Check
from gangline.pipeline.rooms import Rooms
from gangline.project.config import ProjectConfig, load_project
from gangline.project.paths import ProjectPaths, find_root

MIN_GIT = (2, 36)  # `git worktree list --porcelain` parsing and `merge --no-autostash`
MIN_FREE_BYTES = 1 << 30
_CLI_TIMEOUT_S = 30


def run_checks(start: Path, env: Mapping[str, str], port: int) -> list[Check]:
    """Every check, in the order a person would fix them; later checks are skipped when earlier ones fail."""
    checks = [check_git(env)]
    try:
        root = find_root(start)
    except GanglineError as err:
        return [*checks, Check("repository", False, str(err), "run gangline inside the repository it should work on")]
    checks.append(Check("repository", True, str(root)))
    paths = ProjectPaths(root)
    try:
        config = load_project(paths, env)
    except GanglineError as err:
        return [*checks, Check("configuration", False, str(err), "edit .gangline/project.toml (or run gangline init)")]
    checks.append(Check("configuration", True, f"{len(config.agents)} agent profile(s), {len(config.gates)} gate(s)"))
    sandbox = check_sandbox(Rooms.of(paths, config, env))
    checks.append(sandbox)
    checks += [check_agent(profile, env, sandboxed=sandbox.ok and config.sandbox is not SandboxMode.OFF)
               for profile in config.agents]  # fmt: skip
    database = check_database(paths, env)
    kept = [check_retention(paths, config, env)] if database.ok else []
    return [*checks, database, *check_chats(config, paths, env), check_port(port), check_disk(paths), *kept]


def check_database(paths: ProjectPaths, env: Mapping[str, str]) -> Check:
    """The store the project's commands open: SQLite's file, or a PostgreSQL that answers (nothing is changed)."""
    from gangline.project.database import database_url
    from gangline.store.opening import probe_store

    try:
        return Check("database", True, probe_store(database_url(paths, env)))
    except GanglineError as err:
        fix = "start the database, or set database_url in project.toml (or GANGLINE_DATABASE_URL) right"
        return Check("database", False, str(err), fix)


def check_chats(config: ProjectConfig, paths: ProjectPaths, env: Mapping[str, str]) -> list[Check]:
    """Each [[chat]] account: its secret set, its client installed, its platform answering to it."""
    if not config.chats:
        return []
    import asyncio

    from gangline.chat.serving import check_accounts

    return asyncio.run(check_accounts(config, paths, env))


def check_sandbox(rooms: Rooms) -> Check:
    """Which sandbox is in force for agents and gates, and how to get one where it is missing."""
    detail = rooms.describe()
    if rooms.mode is SandboxMode.OFF or bwrap_path() is not None:
        return Check("sandbox", True, detail)
    return Check("sandbox", False, detail, INSTALL)


def check_git(env: Mapping[str, str]) -> Check:
    found = shutil.which("git", path=env.get("PATH"))
    if found is None:
        return Check("git", False, "git is not on PATH", "install git (2.36 or newer)")
    out = _output([found, "--version"], env)
    match = re.search(r"(\d+)\.(\d+)", out or "")
    if match is None:
        return Check("git", False, f"could not read the version of {found}", "check that git runs")
    version = (int(match[1]), int(match[2]))
    if version < MIN_GIT:
        return Check("git", False, f"git {match[0]} is older than 2.36", "upgrade git to 2.36 or newer")
    return Check("git", True, f"{found}, version {match[0]}")


def check_agent(profile: AgentProfile, env: Mapping[str, str], sandboxed: bool = False) -> Check:
    """The profile's CLI: found, signed in, able to start as configured, its version, and every flag it needs."""
    name = f"agent {profile.name}"
    if profile.cli is CliKind.FAKE:
        return Check(name, True, "the fake agent shipped with gangline")
    adapter = ADAPTERS[profile.cli]
    try:
        binary = resolve_binary(profile, profile.command or adapter.binary)
        adapter.environment(profile, env)  # a provider's key_env that is not set
    except GanglineError as err:
        return Check(name, False, str(err), f"{adapter.install}, or set command = <path> in its [[agent]] table")
    refusal = _refusal(profile, {**env, **profile.env}, sandboxed)
    if refusal is not None:
        return Check(name, False, refusal[0], refusal[1])
    version = (_output([binary, "--version"], env) or "").strip().splitlines()
    detail = f"{profile.cli.value} at {binary}, {version[0] if version else 'version unknown'}"
    helps: dict[tuple[str, ...], str] = {}
    missing: list[str] = []
    for check in adapter.flags(profile):
        if check.help_args not in helps:
            helps[check.help_args] = _output([binary, *check.help_args], env) or ""
        if not re.search(rf"(?<![\w-]){re.escape(check.flag)}(?![\w-])", helps[check.help_args]):
            missing.append(" ".join((*check.help_args[:-1], check.flag)))
    if missing:
        return Check(name, False, f"{detail}; its --help lacks {', '.join(missing)}", "upgrade the agent CLI")
    return Check(name, True, detail)


def _refusal(profile: AgentProfile, env: dict[str, str], sandboxed: bool) -> tuple[str, str] | None:
    """Why the CLI would refuse to start as configured, and the fix: root with bypassPermissions, no sign-in."""
    bypass = profile.cli is CliKind.CLAUDE and profile.permission_mode is PermissionMode.BYPASS
    if bypass and os.geteuid() == 0 and not sandboxed and not env.get("IS_SANDBOX"):
        said = "cannot be used with root/sudo privileges"
        return f"Claude Code refuses bypassPermissions as root ({said})", fix_for([said]) or ""
    if profile.provider is not None:
        return None  # the provider's key_env was checked above
    problem = homes.sign_in_problem(profile.cli, env, Path(env.get("HOME") or Path.home()))
    return (problem, "sign the CLI in, or give gangline its API key") if problem else None


def check_port(port: int, host: str = "127.0.0.1") -> Check:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError as err:
            return Check("port", False, f"{host}:{port} is not free: {err.strerror}", "choose another --port")
    return Check("port", True, f"{host}:{port} is free")


def check_disk(paths: ProjectPaths) -> Check:
    usage = shutil.disk_usage(paths.root)
    free_gib = usage.free / (1 << 30)
    if usage.free < MIN_FREE_BYTES:
        fix = "free some space: every item gets a worktree, and run logs grow with every agent"
        return Check("disk", False, f"{free_gib:.2f} GiB free at {paths.root}", fix)
    return Check("disk", True, f"{free_gib:.1f} GiB free")


def check_retention(paths: ProjectPaths, config: ProjectConfig, env: Mapping[str, str]) -> Check:
    """What the runs' logs, worktrees and gates' output take, against ``[retention] max_bytes``."""
    from gangline.pipeline.retention import measure
    from gangline.project.database import database_url
    from gangline.store import open_store

    store = open_store(database_url(paths, env))
    try:
        disk = asyncio.run(measure(paths, store, int(config.retention.max_bytes)))
    finally:
        store.close()
    if disk.over:
        fix = ("a running server removes the oldest logs and done items' worktrees at its next sweep; "
               "raise [retention] max_bytes to keep more")  # fmt: skip
        return Check("retention", False, disk_line(disk), fix)
    return Check("retention", True, disk_line(disk))


def _output(argv: list[str], env: Mapping[str, str]) -> str | None:
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=_CLI_TIMEOUT_S, env=dict(env), stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None
