"""Record the transcripts gangline ships, by running the pinned real Claude Code CLI offline.

    .venv/bin/python tests/kits/record_transcripts.py

The CLI talks to the scripted fake model API in ``fakeapi.py``; what it prints on stdout is
saved verbatim, with the throwaway directory names replaced by neutral ones. The fake agent
replays ``src/gangline/fake/transcripts/write.jsonl`` in ``gangline demo`` and the benchmark.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from kits.claude_cli import offline_env, print_argv
from kits.fakeapi import FakeAnthropic, Turn, text_block, text_turn, thinking_block, tool_turn, tool_use_block

ROOT = Path(__file__).resolve().parents[2]

HELLO = "print('hello from gangline')\n"
DEMO_SCRIPT = [
    Turn(
        [
            thinking_block("The user wants hello.py. I will write it, run it, then commit."),
            text_block("I'll create hello.py, run it, and commit it."),
            tool_use_block("Write", {"file_path": "{cwd}/hello.py", "content": HELLO}),
        ],
        input_tokens=2100,
        output_tokens=90,
    ),
    tool_turn(
        "Bash", {"command": "python3 hello.py", "description": "Run hello.py"}, input_tokens=2300, output_tokens=40
    ),
    tool_turn(
        "Bash",
        {
            "command": "git add hello.py && git commit -q -m 'Add hello.py' && git log --oneline -1",
            "description": "Commit hello.py",
        },
        input_tokens=2400,
        output_tokens=60,
    ),
    text_turn("Done: hello.py prints 'hello from gangline' and is committed.", input_tokens=2500, output_tokens=25),
]
TEXT_SCRIPT = [text_turn("Hello from the fake model API.", input_tokens=1200, output_tokens=12)]


def record(script: list[Turn], prompt: str, extra: list[str]) -> bytes:
    with tempfile.TemporaryDirectory() as tmp, FakeAnthropic(script) as api:
        repo, home = Path(tmp, "project"), Path(tmp, "home")
        repo.mkdir()
        home.mkdir()
        for args in (
            ["init", "-q", "-b", "main"],
            ["config", "user.name", "Demo"],
            ["config", "user.email", "demo@example.invalid"],
        ):
            subprocess.run(["git", *args], cwd=repo, check=True)
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", **offline_env(api.base_url, home)}
        argv = print_argv(prompt, *extra)
        out = subprocess.run(
            argv, cwd=repo, env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=120, check=True
        ).stdout
        return out.replace(str(home).encode(), b"/home/user").replace(str(repo).encode(), b"/home/user/project")


def main() -> None:
    demo = record(
        DEMO_SCRIPT,
        "Create hello.py that prints 'hello from gangline', run it once to check it works, and commit it with git.",
        ["--allowedTools", "Bash(python3:*),Bash(git add:*),Bash(git commit:*),Bash(git log:*)"],
    )
    assert b"hello from gangline" in demo and b'"subtype":"success"' in demo, demo[-2000:]
    (ROOT / "src" / "gangline" / "fake" / "transcripts" / "write.jsonl").write_bytes(demo)
    (ROOT / "tests" / "transcripts").mkdir(exist_ok=True)
    (ROOT / "tests" / "transcripts" / "claude_write.jsonl").write_bytes(demo)
    (ROOT / "tests" / "transcripts" / "claude_text.jsonl").write_bytes(record(TEXT_SCRIPT, "say hello", []))


if __name__ == "__main__":
    main()
