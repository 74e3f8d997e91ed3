"""What ``project.stacks`` reads in a repository's files, and the gates it proposes for them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gangline.project.stacks import survey

NPM_INIT = json.dumps({"scripts": {"test": 'echo "Error: no test specified" && exit 1'}})
NODE_DEPS = json.dumps({"scripts": {"test": "vitest run", "typecheck": "tsc --noEmit"}, "devDependencies": {"x": "1"}})


@pytest.mark.parametrize(
    ("files", "stacks", "gates"),
    [
        ({"README.md": "# r\n"}, (), []),
        ({"requirements.txt": "requests\n"}, ("python",), []),
        (
            {"pyproject.toml": "[tool.pytest.ini_options]\n[tool.mypy]\nstrict = true\n", "tests/t.py": ""},
            ("python",),
            [("tests", "python3 -m pytest -q"), ("types", "python3 -m mypy .")],
        ),
        ({"setup.cfg": "[mypy]\n", "pytest.ini": ""}, ("python",), [("tests", "python3 -m pytest -q"),
                                                                    ("types", "python3 -m mypy .")]),
        ({"package.json": NPM_INIT}, ("node",), []),
        (
            {"package.json": NODE_DEPS, "package-lock.json": "{}"},
            ("node",),
            [("after_create", "npm ci --no-audit --no-fund"), ("tests", "npm test"), ("types", "npm run typecheck")],
        ),
        ({"package.json": NODE_DEPS, "pnpm-lock.yaml": ""}, ("node",), [("tests", "pnpm test"),
                                                                        ("types", "pnpm run typecheck")]),
        ({"package.json": "{broken"}, ("node",), []),
        (
            {"Cargo.toml": "[package]\n"},
            ("rust",),
            [("tests", "cargo test --quiet"), ("lint", "cargo clippy --all-targets --quiet -- -D warnings"),
             ("format", "cargo fmt --check")],
        ),
        ({"go.mod": "module m\n"}, ("go",), [("tests", "go test ./..."), ("vet", "go vet ./...")]),
        (
            {"go.mod": "module m\n", "Makefile": "VAR := 1\ncheck: test\ntest:\n\tgo test ./...\n"},
            ("go", "make"),
            [("tests", "make test"), ("check", "make check"), ("vet", "go vet ./...")],
        ),
    ],
)  # fmt: skip
def test_each_stack_is_read_from_its_files(
    tmp_path: Path, files: dict[str, str], stacks: tuple[str, ...], gates: list[tuple[str, str]]
) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    found = survey(tmp_path)
    assert found.stacks == stacks
    assert [(p.name, p.command) for p in found.proposals] == gates
    assert [p.point for p in found.proposals if p.point] == [n for n, _ in gates if n == "after_create"]
