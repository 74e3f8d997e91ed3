"""What a repository is built with, read from its files, and the gates that check it.

``gangline init`` and the board's onboarding propose these gates (and an ``after_create`` hook where a
worktree needs its dependencies installed before anything runs in it); each is then run once
(``pipeline.onboarding``) before it is written. A Makefile's own ``test``, ``lint`` or ``check``
target is the project's word on how it is checked, so it wins over a stack's usual command of the
same name.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

# npm init writes this test script: it fails on purpose, so it is no test suite.
_NPM_NO_TEST = 'echo "Error: no test specified" && exit 1'
_MAKE_TARGET = re.compile(r"^([A-Za-z0-9_.-]+)\s*:(?!=)", re.MULTILINE)
_MAKE_GATES = (("tests", "test"), ("lint", "lint"), ("types", "typecheck"), ("check", "check"))


@dataclass(frozen=True)
class Proposal:
    """A gate gangline would add (or a hook: ``point``): its name and command, and what in the repository suggested
    it."""

    name: str
    command: str
    why: str
    point: str | None = None  # "after_create": a hook that readies each worktree, run before the gates


@dataclass(frozen=True)
class Survey:
    stacks: tuple[str, ...]  # "python", "node", "rust", "go", "make", in that order
    proposals: tuple[Proposal, ...]


def survey(root: Path) -> Survey:
    """The stacks ``root`` uses and the gates proposed for them, the Makefile's targets first."""
    found: dict[str, list[Proposal]] = {}
    for stack, read in (("make", _make), ("python", _python), ("node", _node), ("rust", _rust), ("go", _go)):
        proposals = read(root)
        if proposals is not None:
            found[stack] = proposals
    chosen: dict[str, Proposal] = {}
    for proposals in found.values():
        for proposal in proposals:
            chosen.setdefault(proposal.name, proposal)
    order = ("python", "node", "rust", "go", "make")
    return Survey(tuple(stack for stack in order if stack in found), tuple(chosen.values()))


def _text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _make(root: Path) -> list[Proposal] | None:
    for name in ("GNUmakefile", "makefile", "Makefile"):
        text = _text(root / name)
        if text is not None:
            targets = set(_MAKE_TARGET.findall(text))
            return [
                Proposal(gate, f"make {target}", f"{name} has a {target!r} target")
                for gate, target in _MAKE_GATES
                if target in targets
            ]
    return None


def _python(root: Path) -> list[Proposal] | None:
    markers = ("pyproject.toml", "setup.py", "setup.cfg", "requirements.txt")
    if not any((root / name).is_file() for name in markers):
        return None
    pyproject = _toml(root / "pyproject.toml")
    tool = pyproject.get("tool")
    tool = tool if isinstance(tool, dict) else {}
    setup_cfg = _text(root / "setup.cfg") or ""
    proposals = []
    pytest_signs = [
        sign
        for sign, present in (
            ("pyproject.toml configures pytest", "pytest" in tool),
            ("pytest.ini", (root / "pytest.ini").is_file()),
            ("conftest.py", (root / "conftest.py").is_file()),
            ("a tests/ directory", (root / "tests").is_dir() or (root / "test").is_dir()),
        )
        if present
    ]
    if pytest_signs:
        proposals.append(Proposal("tests", "python3 -m pytest -q", pytest_signs[0]))
    if "ruff" in tool or (root / "ruff.toml").is_file() or (root / ".ruff.toml").is_file():
        proposals.append(Proposal("lint", "python3 -m ruff check .", "the project configures ruff"))
    if "mypy" in tool or (root / "mypy.ini").is_file() or "[mypy]" in setup_cfg:
        proposals.append(Proposal("types", "python3 -m mypy .", "the project configures mypy"))
    return proposals


def _node(root: Path) -> list[Proposal] | None:
    text = _text(root / "package.json")
    if text is None:
        return None
    try:
        package = json.loads(text)
    except ValueError:
        return []
    if not isinstance(package, dict):
        return []
    scripts = package.get("scripts")
    scripts = scripts if isinstance(scripts, dict) else {}
    runner = _node_runner(root)
    proposals = []
    dependencies = any(package.get(key) for key in ("dependencies", "devDependencies"))
    if dependencies and runner == "npm" and (root / "package-lock.json").is_file():
        # A worktree starts without node_modules; the tests need them installed first, once per worktree.
        why = "package-lock.json pins dependencies, and a worktree starts without node_modules"
        proposals.append(Proposal("after_create", "npm ci --no-audit --no-fund", why, point="after_create"))
    test = scripts.get("test")
    if isinstance(test, str) and test.strip() and test.strip() != _NPM_NO_TEST:
        proposals.append(Proposal("tests", f"{runner} test", "package.json has a test script"))
    for script, gate in (("lint", "lint"), ("typecheck", "types"), ("type-check", "types")):
        if isinstance(scripts.get(script), str):
            proposals.append(Proposal(gate, f"{runner} run {script}", f"package.json has a {script} script"))
    return proposals


def _node_runner(root: Path) -> str:
    for lockfile, runner in (("pnpm-lock.yaml", "pnpm"), ("yarn.lock", "yarn"), ("bun.lockb", "bun")):
        if (root / lockfile).is_file():
            return runner
    return "npm"


def _rust(root: Path) -> list[Proposal] | None:
    if not (root / "Cargo.toml").is_file():
        return None
    return [
        Proposal("tests", "cargo test --quiet", "Cargo.toml"),
        Proposal("lint", "cargo clippy --all-targets --quiet -- -D warnings", "Cargo.toml"),
        Proposal("format", "cargo fmt --check", "Cargo.toml"),
    ]


def _go(root: Path) -> list[Proposal] | None:
    if not (root / "go.mod").is_file():
        return None
    return [Proposal("tests", "go test ./...", "go.mod"), Proposal("vet", "go vet ./...", "go.mod")]


def _toml(path: Path) -> dict[str, object]:
    text = _text(path)
    if text is None:
        return {}
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return {}
