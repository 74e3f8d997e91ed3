"""A fake agent CLI: replays a recorded stream-json transcript through its stdout (a PTY).

It accepts and ignores Claude Code's own flags, so the runner can drive it the same way,
and adds its own for the demo, tests and benchmarks (``--help`` lists them).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from importlib import resources
from pathlib import Path

DEFAULT_TRANSCRIPT = "write.jsonl"


def shipped_transcript(name: str = DEFAULT_TRANSCRIPT) -> Path:
    return Path(str(resources.files("gangline.transcripts").joinpath(name)))


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gangline-fake-agent", description=__doc__)
    p.add_argument("-p", "--print", dest="prompt", default="", help="the prompt (ignored)")
    p.add_argument("--resume", default=None, help="session to resume (ignored)")
    p.add_argument("--transcript", type=Path, default=None, help="file whose lines are replayed verbatim")
    p.add_argument("--rate", type=float, default=0.0, help="lines per second; 0 means as fast as possible")
    p.add_argument(
        "--repeat-to",
        type=int,
        default=0,
        help="emit this many lines: the first and last once, the lines between them cycled",
    )
    p.add_argument("--exit-code", type=int, default=0, help="exit status after the replay")
    p.add_argument("--hang-after", type=int, default=-1, help="stop after this many lines and hang forever")
    p.add_argument("--ignore-sigterm", action="store_true", help="ignore SIGTERM (only SIGKILL ends it)")
    p.add_argument("--grandchild", action="store_true", help="start a process that outlives this one")
    p.add_argument("--stderr", default=None, help="text to print on stderr before exiting")
    return p


def _lines(path: Path, repeat_to: int) -> list[bytes]:
    lines = [line if line.endswith(b"\n") else line + b"\n" for line in path.read_bytes().splitlines(keepends=True)]
    if repeat_to and len(lines) > 2:
        # One session start and one result around a long body, as a long real session has.
        body = lines[1:-1]
        full, rest = divmod(repeat_to - 2, len(body))
        lines = [lines[0], *(body * full), *body[:rest], lines[-1]]
    return lines


def _write_all(data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(1, view) :]


def _replay(lines: list[bytes], rate: float) -> None:
    if rate <= 0:
        # Big writes: the benchmark measures the reader, not this process.
        for start in range(0, len(lines), 256):
            _write_all(b"".join(lines[start : start + 256]))
        return
    period = 1.0 / rate
    next_at = time.monotonic()
    for line in lines:
        _write_all(line)
        next_at += period
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)


def _spawn_grandchild() -> int:
    # Stays in our process group, holds the PTY open, and ignores SIGTERM: the runner must
    # still make it die with the run.
    code = "import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN); signal.pause()"
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.DEVNULL)
    return child.pid


def main(argv: list[str] | None = None) -> int:
    args, _claude_flags = _parser().parse_known_args(argv)
    if args.ignore_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if args.grandchild:
        pid = _spawn_grandchild()
        _write_all(b'{"type":"system","subtype":"fake_grandchild","description":"%d"}\n' % pid)
    path = args.transcript or shipped_transcript()
    lines = _lines(path, args.repeat_to)
    if args.hang_after >= 0:
        _replay(lines[: args.hang_after], args.rate)
        threading.Event().wait()
    _replay(lines, args.rate)
    if args.stderr:
        os.write(2, args.stderr.encode() + b"\n")
    return int(args.exit_code)


if __name__ == "__main__":
    sys.exit(main())
