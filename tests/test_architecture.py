"""The shape of the code, kept by tests: layers as packages, no cycles, small modules and functions.

The layers, lowest first (SPEC.md "Layout"): a module may import its own package and the
packages below it, never one above. ``server``, ``chat`` and ``nodes`` are doors side by side
and never import each other; ``cli`` and ``bench`` stand on everything, except that the CLI
reaches a server only over HTTP: of ``server`` it may import the module that starts one.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "gangline"

LAYERS: dict[str, int] = {
    "core": 0,
    "agents": 1,
    "fake": 2,
    "store": 3,
    "repo": 4,
    "project": 5,
    "pipeline": 6,
    "server": 7,
    "chat": 7,
    "nodes": 7,
    "cli": 8,
    "bench": 8,
}
DOORS = frozenset({"server", "chat", "nodes"})
# What the CLI may import of the server: the module that starts one (`serve`, `run`, `demo`).
CLI_MAY_START = frozenset({"gangline.server.serving"})
# Libraries that do I/O or wait: the pure core imports none of them.
IO_LIBRARIES = frozenset(
    {
        "asyncio", "os", "subprocess", "shutil", "socket", "select", "selectors", "fcntl", "pty",
        "termios", "tty", "threading", "multiprocessing", "tempfile", "sqlite3", "sqlalchemy",
        "alembic", "psycopg", "httpx", "http", "urllib", "fastapi", "starlette", "uvicorn", "mcp",
        "rich", "typer", "click", "logging", "pidfd",
    }
)  # fmt: skip
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


@dataclass(frozen=True)
class Import:
    importer: str  # dotted module name
    imported: str  # dotted module name (a gangline module, or a top-level library name)
    line: int


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str]) -> Iterator[Import]:
    """Every import in the module, at any depth (inside functions and TYPE_CHECKING blocks too)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(name, _resolve(alias.name, known), node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package.split(".")[: len(package.split(".")) - node.level + 1], base]).strip(".")
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                yield Import(name, candidate if candidate in known else _resolve(base, known), node.lineno)


def _resolve(dotted: str, known: set[str]) -> str:
    """The gangline module a dotted name is, or its top-level library."""
    while dotted and dotted not in known and dotted.startswith("gangline."):
        dotted = dotted.rpartition(".")[0]
    return dotted if dotted in known else dotted.split(".")[0]


def graph() -> dict[str, list[Import]]:
    found = modules()
    known = set(found)
    return {name: list(imports_of(name, path, known)) for name, path in found.items()}


def package_of(module: str) -> str | None:
    """The layer package a gangline module belongs to (None for the top-level ``gangline`` modules)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def layering_violations(edges: dict[str, list[Import]]) -> list[str]:
    wrong = []
    for importer, found in edges.items():
        mine = package_of(importer)
        if mine is None:
            continue
        for edge in found:
            theirs = package_of(edge.imported)
            if theirs is None or theirs == mine:
                continue
            why = _why_not(mine, theirs, edge.imported)
            if why:
                wrong.append(f"{importer} (line {edge.line}) imports {edge.imported}: {why}")
    return wrong


def _why_not(mine: str, theirs: str, imported: str) -> str | None:
    if mine == "cli" and theirs == "server":
        return None if imported in CLI_MAY_START else "the CLI reaches a server over HTTP; it may only start one"
    if mine in DOORS and theirs in DOORS:
        return f"the doors {mine} and {theirs} never import each other"
    if LAYERS[theirs] > LAYERS[mine]:
        return f"{theirs} is above {mine}"
    return None


def io_in_core(edges: dict[str, list[Import]]) -> list[str]:
    return [
        f"{importer} (line {edge.line}) imports {edge.imported}"
        for importer, found in edges.items()
        if package_of(importer) == "core"
        for edge in found
        if edge.imported.split(".")[0] in IO_LIBRARIES
    ]


def cycles(edges: dict[str, list[Import]]) -> list[list[str]]:
    """Groups of gangline modules that import each other, directly or around a loop (Tarjan)."""
    targets = {m: sorted({e.imported for e in found if e.imported in edges}) for m, found in edges.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in targets[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1 or node in targets[node]:
                found.append(sorted(group))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for node in targets:
        if node not in index:
            visit(node)
    return found


def oversized() -> list[str]:
    too_big = []
    for name, path in modules().items():
        text = path.read_text(encoding="utf-8")
        lines = len(text.splitlines())
        if lines > MAX_MODULE_LINES:
            too_big.append(f"module {name}: {lines} lines (at most {MAX_MODULE_LINES})")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    where = f"function {name}.{node.name} (line {node.lineno})"
                    too_big.append(f"{where}: {length} lines (at most {MAX_FUNCTION_LINES})")
    return too_big


# --- the tests ---------------------------------------------------------------------------------


def _said(found: list[str]) -> str:
    return "\n" + "\n".join(found)


def test_no_package_imports_a_package_above_it() -> None:
    wrong = layering_violations(graph())
    assert wrong == [], _said(wrong)


def test_the_core_imports_no_library_that_does_io() -> None:
    wrong = io_in_core(graph())
    assert wrong == [], _said(wrong)


def test_no_two_modules_import_each_other_even_around_a_loop() -> None:
    loops = [" -> ".join(group) for group in cycles(graph())]
    assert loops == [], _said(loops)


def test_no_module_is_over_400_lines_and_no_function_over_60() -> None:
    too_big = oversized()
    assert too_big == [], _said(too_big)


def test_every_module_says_what_it_owns_in_a_docstring() -> None:
    missing = [name for name, path in modules().items() if not ast.get_docstring(ast.parse(path.read_text()))]
    assert missing == [], _said(missing)


@pytest.mark.parametrize(
    ("importer", "imported", "complaint"),
    [
        ("gangline.store.store", "gangline.pipeline.orchestrator", "pipeline is above store"),
        ("gangline.server.items", "gangline.cli.client", "cli is above server"),
        ("gangline.cli.items", "gangline.server.items", "the CLI reaches a server over HTTP"),
        ("gangline.server.mcp", "gangline.chat.matrix", "the doors server and chat never import each other"),
    ],
)
def test_the_layering_check_names_a_wrong_import_and_why(importer: str, imported: str, complaint: str) -> None:
    edges = {importer: [Import(importer, imported, 7)]}
    [violation] = layering_violations(edges)
    assert violation.startswith(f"{importer} (line 7) imports {imported}: ")
    assert complaint in violation


def test_the_cycle_check_finds_a_loop_through_three_modules() -> None:
    def edge(a: str, b: str) -> Import:
        return Import(a, b, 1)

    edges = {"a": [edge("a", "b")], "b": [edge("b", "c")], "c": [edge("c", "a")], "d": [edge("d", "a")]}
    assert cycles(edges) == [["a", "b", "c"]]


def test_importing_the_command_line_loads_no_web_stack() -> None:
    code = (
        "import sys, gangline.cli.app\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules} & {'fastapi', 'uvicorn', 'starlette', 'mcp'})))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == ""
