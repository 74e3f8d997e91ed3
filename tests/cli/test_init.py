"""The guided ``gangline init`` on real small projects: the gates their stacks suggest, proven, then a pipeline run.

Each project is a real git repository made here (a Python package with pytest, a Node package
with ``npm test``, a Makefile project); init runs as a process of its own, its proofs in real
worktrees. One run answers its questions at a real terminal (a PTY), with the real agent CLIs
of package-lock.json on PATH.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
import tomllib
from pathlib import Path

import pytest

from kits.agent_clis import CODEX, GEMINI
from kits.claude_cli import CLAUDE
from kits.helpers import cli_env, git, new_repo, ok
from kits.helpers import gangline as _gangline

VENV_BIN = str(Path(sys.executable).parent)  # its python3 has pytest and ruff, as a developer's would


def gangline(*args: str, cwd: Path, path: str = "") -> subprocess.CompletedProcess[str]:
    env = cli_env(PATH=f"{path}{VENV_BIN}{os.pathsep}/usr/bin{os.pathsep}/bin")
    return _gangline(*args, cwd=cwd, env=env, timeout=300)


def config(repo: Path) -> dict[str, object]:
    return tomllib.loads((repo / ".gangline" / "project.toml").read_text())


def python_package(path: Path) -> Path:
    pyproject = '[project]\nname = "calc"\nversion = "0.1"\n\n[tool.ruff]\nline-length = 100\n'
    return new_repo(
        path,
        ("pyproject.toml", pyproject, "package"),
        ("calc.py", "def add(a: int, b: int) -> int:\n    return a + b\n", "code"),
        ("test_calc.py", "from calc import add\n\n\ndef test_add() -> None:\n    assert add(2, 3) == 5\n", "tests"),
        ("conftest.py", "", "pytest root"),
    )


def test_a_python_package_gets_pytest_and_ruff_proven_and_a_fake_coder_carries_an_item_to_main(
    tmp_path: Path,
) -> None:
    repo = python_package(tmp_path / "calc")
    out = ok(gangline("init", "--yes", "--cli", "fake", cwd=repo))
    assert "Stack: python" in out
    assert re.search(r"✓ tests: python3 -m pytest -q passed", out), out
    assert re.search(r"✓ lint: python3 -m ruff check \. passed", out), out
    settings = config(repo)
    assert [(g["name"], g["command"]) for g in settings["gate"]] == [  # type: ignore[index]
        ("tests", "python3 -m pytest -q"),
        ("lint", "python3 -m ruff check ."),
    ]
    assert [a["cli"] for a in settings["agent"]] == ["fake"]  # type: ignore[index]
    assert git(repo, "worktree", "list").count("\n") == 0  # the proofs' worktrees are gone

    ok(gangline("add", "Write notes", "--criterion", "notes exist", cwd=repo))
    ok(gangline("run", "--until-idle", "--quiet", cwd=repo))
    item = json.loads(ok(gangline("show", "1", "--json", cwd=repo)))
    assert item["stage"] == "done", item
    assert [g["name"] for g in item["gates"] if g["passed"]] == ["tests", "lint"]
    assert "notes/write-notes.md" in git(repo, "ls-tree", "-r", "--name-only", "main")


def test_a_node_package_gets_npm_test_and_a_failing_lint_script_is_shown_but_not_kept(tmp_path: Path) -> None:
    package = {"name": "greet", "version": "1.0.0", "scripts": {"test": "node test.js", "lint": "node lint.js"}}
    repo = new_repo(
        tmp_path / "greet",
        ("package.json", json.dumps(package), "package"),
        ("test.js", "const assert = require('assert');\nassert.strictEqual(1 + 1, 2);\n", "test"),
        ("lint.js", "console.error('lint: 2 problems in index.js');\nprocess.exit(1);\n", "lint"),
    )
    out = ok(gangline("init", "--yes", cwd=repo))
    assert "Stack: node" in out and re.search(r"✓ tests: npm test passed", out), out
    assert re.search(r"✗ lint: npm run lint failed with exit code 1", out), out
    assert "lint: 2 problems in index.js" in out  # why, from the gate's own output
    text = (repo / ".gangline" / "project.toml").read_text()
    note = "# package.json has a lint script; failed with exit code 1 when init ran it; uncomment once it passes"
    assert note in text
    assert [g["command"] for g in config(repo)["gate"]] == ["npm test"]  # type: ignore[index]
    coder = config(repo)["agent"][0]  # type: ignore[index]
    assert coder["cli"] == "claude" and "Bash(npm test:*)" in coder["allowed_tools"]


def test_a_locked_node_package_gets_npm_ci_as_after_create_so_its_tests_find_their_dependencies(
    tmp_path: Path,
) -> None:
    package = {"name": "sum", "version": "1.0.0", "scripts": {"test": "node test.js"},
               "dependencies": {"helper": "file:helper"}}  # fmt: skip
    repo = new_repo(
        tmp_path / "sum",
        ("package.json", json.dumps(package), "package"),
        ("helper/package.json", json.dumps({"name": "helper", "version": "1.0.0", "main": "index.js"}), "helper"),
        ("helper/index.js", "module.exports = (a, b) => a + b;\n", "helper code"),
        ("test.js", "require('assert').strictEqual(require('helper')(1, 2), 3);\n", "test"),
        (".gitignore", "node_modules/\n", "ignore"),
    )
    subprocess.run(["npm", "install", "--package-lock-only", "--no-audit", "--no-fund"], cwd=repo, check=True,
                   capture_output=True, timeout=120)  # fmt: skip
    git(repo, "add", "package-lock.json")
    git(repo, "commit", "-q", "-m", "lock")
    out = ok(gangline("init", "--yes", "--cli", "fake", cwd=repo))
    assert re.search(r"✓ after_create hook: npm ci --no-audit --no-fund passed", out), out
    assert re.search(r"✓ tests: npm test passed", out), out  # proven after the hook, in the same fresh worktree
    settings = config(repo)
    assert settings["hooks"] == {"after_create": "npm ci --no-audit --no-fund", "timeout_s": 600.0}
    assert [g["command"] for g in settings["gate"]] == ["npm test"]  # type: ignore[index]

    ok(gangline("add", "Write notes", cwd=repo))
    ok(gangline("run", "--until-idle", "--quiet", cwd=repo))
    item = json.loads(ok(gangline("show", "1", "--json", cwd=repo)))
    assert item["stage"] == "done", item
    # The merge workspace starts clean each squash: its gates passed because after_create ran there too.
    assert [(g["name"], g["context"], g["passed"]) for g in item["gates"]] == [("tests", "merge", True)]
    assert [(h["name"], h["passed"]) for h in item["hooks"]] == [("after_create", True)]
    shown = ok(gangline("show", "1", cwd=repo))
    assert "Hooks (each one's last run)" in shown and "after_create" in shown


def test_a_makefile_target_wins_over_the_stacks_usual_command(tmp_path: Path) -> None:
    repo = new_repo(
        tmp_path / "tool",
        ("go.mod", "module example.com/tool\n\ngo 1.22\n", "module"),
        ("Makefile", "test:\n\t@echo all 3 tests pass\n\nlint:\n\t@exit 0\n", "make"),
    )
    out = ok(gangline("init", "--yes", "--no-mcp", cwd=repo))
    assert "Stack: go, make" in out
    gates = [(g["name"], g["command"]) for g in config(repo)["gate"]]  # type: ignore[index]
    assert ("tests", "make test") in gates and ("lint", "make lint") in gates
    assert ("vet", "go vet ./...") in gates or "✗ vet" in out  # the Go toolchain may not be on this machine
    assert not (repo / ".mcp.json").exists()


def test_mcp_json_gains_gangline_and_keeps_the_persons_other_servers(tmp_path: Path) -> None:
    repo = new_repo(tmp_path / "r", ("README.md", "# r\n", "initial"))
    (repo / ".mcp.json").write_text(json.dumps({"mcpServers": {"docs": {"command": "docs-server"}}}))
    out = ok(gangline("init", "--yes", cwd=repo))
    assert 'added the "gangline" server to .mcp.json' in out
    servers = json.loads((repo / ".mcp.json").read_text())["mcpServers"]
    assert servers["docs"] == {"command": "docs-server"}
    assert servers["gangline"]["args"][-1] == "mcp"


def test_a_broken_mcp_json_is_left_alone_and_said_so(tmp_path: Path) -> None:
    repo = new_repo(tmp_path / "r", ("README.md", "# r\n", "initial"))
    (repo / ".mcp.json").write_text("{not json")
    out = ok(gangline("init", "--yes", cwd=repo))
    assert "left .mcp.json alone: it is not JSON" in out
    assert (repo / ".mcp.json").read_text() == "{not json"


def test_a_bad_option_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    repo = new_repo(tmp_path / "r", ("README.md", "# r\n", "initial"))
    out = gangline("init", "--qa", "robot", cwd=repo)
    assert out.returncode == 2 and "--qa: expected one of server, agent, human, got 'robot'" in out.stderr
    assert not (repo / ".gangline").exists()


class Terminal:
    """A process on a real PTY: what it printed, read as it comes, and answers typed in."""

    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.fd, child = pty.openpty()
        fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))  # a wide terminal, as people use
        self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=child, stdout=child, stderr=child)
        os.close(child)
        self.seen = ""

    def expect(self, text: str, within_s: float = 120) -> None:
        deadline = time.monotonic() + within_s
        while text not in self.said():
            left = deadline - time.monotonic()
            assert left > 0, f"never printed {text!r}; printed:\n{self.seen}"
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                try:
                    self.seen += os.read(self.fd, 4096).decode(errors="replace")
                except OSError:  # the process ended and closed its side
                    assert text in self.said(), f"ended without printing {text!r}:\n{self.seen}"

    def type(self, line: str) -> None:
        os.write(self.fd, (line + "\r").encode())

    def said(self) -> str:
        """What it printed with the terminal's line wrapping undone."""
        return " ".join(self.seen.split())

    def close(self) -> int:
        """Its exit code; a process still running after a bound is killed, so a failed test leaks nothing."""
        try:
            return self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()
        finally:
            os.close(self.fd)


@pytest.mark.parametrize("keep", [True, False])
def test_at_a_terminal_init_asks_which_cli_whether_to_keep_a_failing_gate_and_who_reviews(
    tmp_path: Path, keep: bool
) -> None:
    repo = new_repo(tmp_path / "m", ("Makefile", "test:\n\t@true\nlint:\n\t@echo 1 style problem; exit 1\n", "make"))
    clis = os.pathsep.join(str(p.parent) for p in (CLAUDE, CODEX, GEMINI)) + os.pathsep
    env = cli_env(PATH=f"{clis}{VENV_BIN}{os.pathsep}/usr/bin{os.pathsep}/bin", TERM="dumb")
    term = Terminal([sys.executable, "-m", "gangline", "init"], repo, env)
    try:
        term.expect("Keep 'lint' anyway?")
        assert "1 style problem" in term.seen
        term.type("y" if keep else "n")
        term.expect("Which CLI should code? (claude, codex, gemini)")
        assert re.search(r"Found claude at \S+ \(2\.\d+\.\d+ \(Claude Code\)\)", term.said()), term.seen
        term.type("codex")
        term.expect("Who reviews work that passed the gates?")
        term.type("human")
        term.expect("Next steps:")
    finally:
        code = term.close()
    assert code == 0, term.seen
    settings = config(repo)
    assert settings["qa_mode"] == "human"
    assert [a["cli"] for a in settings["agent"]] == ["codex"]  # type: ignore[index]
    kept = [g["name"] for g in settings["gate"]]  # type: ignore[index]
    assert kept == (["tests", "lint"] if keep else ["tests"])
