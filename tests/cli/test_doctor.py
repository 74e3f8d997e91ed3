"""gangline doctor on real repositories: what it finds, and the fix it names for each problem."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from gangline.cli.checks import Check, run_checks
from gangline.project.database import DATABASE_VAR
from gangline.store import open_store
from gangline.store.migrations import HEAD_REVISION
from kits.agent_clis import CODEX_PINNED, GEMINI_PINNED, require_codex, require_gemini
from kits.claude_cli import require_claude
from kits.pipeline_kit import Project
from kits.postgres import Cluster


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


def test_a_healthy_project_passes_every_check_and_reports_the_real_cli_version(tmp_path: Path) -> None:
    project = Project(tmp_path)
    project.add_agent(
        {
            "name": "claude",
            "cli": "claude",
            "command": require_claude(),
            "model": "sonnet",
            "max_budget_usd": 1.0,
            "allowed_tools": ["Bash"],
        }
    )
    project.agent("fake", [[{"say": "hi"}]], role="qa")
    project.configure()
    checks = by_name(run_checks(project.root, {**os.environ, "ANTHROPIC_API_KEY": "sk-signed-in"}, port=0))
    assert all(c.ok for c in checks.values()), checks
    assert "2.1.330 (Claude Code)" in checks["agent claude"].detail
    assert checks["sandbox"].detail.startswith("on (") and ".gangline/ is hidden" in checks["sandbox"].detail
    assert set(checks) == {"git", "repository", "configuration", "sandbox", "agent claude", "agent fake", "database",
                           "port", "disk", "retention"}  # fmt: skip
    assert checks["retention"].detail.endswith("of the 5.0 GiB [retention] allows")
    assert checks["database"].detail == f"SQLite {project.paths.db_file}"


def test_codex_and_gemini_profiles_report_their_pinned_versions_and_every_flag_gangline_passes(tmp_path: Path) -> None:
    project = Project(tmp_path)
    project.add_agent({"name": "codex", "cli": "codex", "command": require_codex(), "model": "gpt-5.5"})
    project.add_agent({"name": "gemini", "cli": "gemini", "command": require_gemini(), "model": "gemini-2.5-flash"})
    project.configure()
    home = tmp_path / "home"
    env = {**os.environ, "HOME": str(home), "CODEX_HOME": str(home / ".codex"), "OPENAI_API_KEY": "sk-1",
           "GEMINI_API_KEY": "g-1"}  # fmt: skip
    (home / ".codex").mkdir(parents=True)
    checks = by_name(run_checks(project.root, env, port=0))
    assert checks["agent codex"].ok and checks["agent gemini"].ok, checks
    assert f"codex-cli {CODEX_PINNED}" in checks["agent codex"].detail
    assert GEMINI_PINNED in checks["agent gemini"].detail


def test_a_cli_whose_help_lacks_a_flag_gangline_passes_is_named(tmp_path: Path) -> None:
    # An older Gemini CLI without --skip-trust: a script answering --version and --help as it would.
    old = tmp_path / "gemini"
    old.write_text("#!/bin/sh\ncase $1 in --version) echo 0.1.0;; *) echo '  -p, --prompt  --output-format';; esac\n")
    old.chmod(0o755)
    project = Project(tmp_path)
    project.add_agent({"name": "gem", "cli": "gemini", "command": str(old)})
    project.configure()
    check = by_name(run_checks(project.root, {**os.environ, "GEMINI_API_KEY": "g-1"}, port=0))["agent gem"]
    assert not check.ok and "--skip-trust" in check.detail and "--approval-mode" in check.detail
    assert check.fix == "upgrade the agent CLI"


def test_a_missing_agent_cli_is_named_with_how_to_install_it(tmp_path: Path) -> None:
    project = Project(tmp_path)
    project.add_agent({"name": "coder", "cli": "claude", "command": str(tmp_path / "nope")})
    project.configure()
    check = by_name(run_checks(project.root, os.environ, port=0))["agent coder"]
    assert not check.ok and "does not exist" in check.detail and "npm install" in check.fix


def test_root_with_bypass_permissions_outside_a_sandbox_and_no_sign_in_are_caught_before_any_run(
    tmp_path: Path,
) -> None:
    project = Project(tmp_path)
    claude = {"cli": "claude", "command": require_claude(), "model": "sonnet"}
    project.add_agent({"name": "bypass", "permission_mode": "bypassPermissions", **claude})
    project.add_agent({"name": "plain", "role": "qa", **claude})
    project.add_agent({"name": "gem", "role": "qa", "cli": "gemini", "command": require_gemini()})
    project.configure(sandbox="off")
    home = tmp_path / "home"  # nobody signed in here
    env = {k: v for k, v in os.environ.items() if k != "IS_SANDBOX"} | {"HOME": str(home), "ANTHROPIC_API_KEY": ""}
    checks = by_name(run_checks(project.root, env, port=0))
    assert checks["sandbox"].ok and checks["sandbox"].detail.startswith('off (sandbox = "off")')
    bypass = checks["agent bypass"]
    if os.geteuid() == 0:
        assert not bypass.ok and "root" in bypass.detail and "install bubblewrap" in bypass.fix
    plain, gem = checks["agent plain"], checks["agent gem"]
    assert not plain.ok and "no ANTHROPIC_API_KEY" in plain.detail and str(home / ".claude") in plain.detail
    assert not gem.ok and "no GEMINI_API_KEY" in gem.detail and "running gemini" in gem.detail
    (home / ".claude").mkdir(parents=True)
    (home / ".claude" / ".credentials.json").write_text('{"claudeAiOauth": {}}')  # a subscription's sign-in
    again = by_name(run_checks(project.root, env, port=0))
    assert again["agent plain"].ok, again["agent plain"]


def test_the_database_is_a_postgresql_that_answers_or_is_named_with_the_fix(
    tmp_path: Path,
    postgres: Cluster,
) -> None:
    project = Project(tmp_path)
    project.agent("coder", [[{"say": "hi"}]])
    project.configure()
    url = postgres.database()
    fresh = by_name(run_checks(project.root, {**os.environ, DATABASE_VAR: url}, port=0))["database"]
    assert (
        fresh.ok
        and fresh.detail.startswith("PostgreSQL 15")
        and fresh.detail.endswith("empty: made at the first start")
    )
    open_store(url).close()  # migrated
    ready = by_name(run_checks(project.root, {**os.environ, DATABASE_VAR: url}, port=0))["database"]
    assert ready.ok and ready.detail.endswith(f"schema at revision {HEAD_REVISION}")
    gone = f"postgresql+psycopg://ann:hunter2@/nowhere?host={tmp_path}"
    down = by_name(run_checks(project.root, {**os.environ, DATABASE_VAR: gone}, port=0))["database"]
    assert not down.ok and down.detail.startswith("cannot reach the database") and "hunter2" not in down.detail
    assert "GANGLINE_DATABASE_URL" in down.fix


def test_outside_a_repository_it_says_where_to_run(tmp_path: Path) -> None:
    checks = run_checks(tmp_path, os.environ, port=0)
    assert checks[-1].name == "repository" and not checks[-1].ok
    assert "inside the repository" in checks[-1].fix


def test_a_broken_project_toml_is_reported_with_the_key(tmp_path: Path) -> None:
    project = Project(tmp_path)
    project.paths.state_dir.mkdir(exist_ok=True)
    project.paths.config_file.write_text("max_retries = -1\n")
    check = run_checks(project.root, os.environ, port=0)[-1]
    assert check.name == "configuration" and not check.ok and "max_retries" in check.detail


def test_a_port_in_use_is_reported(tmp_path: Path) -> None:
    project = Project(tmp_path)
    project.agent("coder", [[{"say": "hi"}]])
    project.configure()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        check = by_name(run_checks(project.root, os.environ, port=port))["port"]
    assert not check.ok and str(port) in check.detail and "--port" in check.fix


def test_the_doctor_command_prints_each_check_and_exits_1_on_a_problem(tmp_path: Path) -> None:
    project = Project(tmp_path)
    project.add_agent({"name": "coder", "cli": "claude", "command": str(tmp_path / "nope")})
    project.configure()
    out = subprocess.run(
        [sys.executable, "-m", "gangline", "doctor", "--port", "0", "--json"],
        cwd=project.root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 1, out.stderr
    checks = {c["name"]: c for c in json.loads(out.stdout)}
    assert checks["git"]["ok"] and not checks["agent coder"]["ok"] and checks["agent coder"]["fix"]
