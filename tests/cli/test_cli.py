"""The ``gangline`` command as a person runs it: a real subprocess, its output and exit code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kits.helpers import TRANSCRIPTS, cli_env
from kits.helpers import gangline as _gangline


def gangline(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return _gangline(*args, cwd=cwd, env=cli_env(**(env or {})))


def test_demo_picks_the_fake_agent_when_claude_is_not_configured(tmp_path: Path) -> None:
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(tmp_path), "ANTHROPIC_API_KEY": ""}
    env["TMPDIR"] = str(tmp_path)  # the throwaway repository goes here
    out = gangline("demo", "--exit-when-done", "--pace", "0", env=env)
    assert out.returncode == 0 and "agent fake" in out.stdout, out.stdout + out.stderr


def test_agent_with_a_missing_cli_binary_names_it_and_exits_non_zero(tmp_path: Path) -> None:
    out = gangline("agent", "hi", "--cwd", str(tmp_path), "--binary", str(tmp_path / "claude"))
    assert out.returncode == 3
    assert f"CLI binary '{tmp_path / 'claude'}' does not exist" in out.stderr
    assert "Traceback" not in out.stderr


def test_agent_with_an_unknown_agent_kind_says_what_is_expected(tmp_path: Path) -> None:
    out = gangline("agent", "hi", "--cwd", str(tmp_path), "--agent", "gpt")
    assert out.returncode == 2
    assert "--agent: expected one of claude, codex, gemini, fake, got 'gpt'" in out.stderr


def test_agent_with_an_invalid_setting_names_the_field(tmp_path: Path) -> None:
    out = gangline("agent", "hi", "--cwd", str(tmp_path), "--agent", "fake", "--inactivity-timeout", "-1")
    assert out.returncode == 2
    assert "settings.inactivity_timeout_s: Input should be greater than 0" in out.stderr


def run_fake(tmp_path: Path, transcript: Path, *fake_args: str) -> subprocess.CompletedProcess[str]:
    """``gangline agent`` with the fake agent replaying ``transcript``, logging under tmp_path/logs."""
    extra = [f"--extra-arg={arg}" for arg in ("--transcript", str(transcript), *fake_args)]
    return gangline(
        "agent", "hi", "--cwd", str(tmp_path), "--agent", "fake", "--log-dir", str(tmp_path / "logs"), *extra
    )


def test_agent_then_log_replays_the_same_events_after_an_id(tmp_path: Path) -> None:
    out = run_fake(tmp_path, TRANSCRIPTS / "claude_text.jsonl")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "● session" in out.stdout and "■ run succeeded" in out.stdout  # rendered live
    (path,) = (tmp_path / "logs").glob("*.jsonl")
    lines = gangline("log", str(path), "--after", "3", "--json").stdout.splitlines()
    ids = [json.loads(line)["id"] for line in lines]
    assert ids == list(range(4, 4 + len(ids))) and len(ids) > 5
    assert json.loads(lines[-1])["event"]["kind"] == "run_finished"


def test_agent_exit_code_is_non_zero_when_the_agent_fails(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    out = run_fake(tmp_path, empty, "--exit-code", "2")
    assert out.returncode == 1
    assert "run refused" in out.stdout and "exited with code 2 before starting a session" in out.stdout


def test_log_of_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    out = gangline("log", str(tmp_path / "none.jsonl"))
    assert out.returncode == 4 and "cannot read" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize("events", ["2000"])
def test_bench_ingest_prints_one_json_line_with_its_figures(events: str) -> None:
    out = gangline("bench", "ingest", "--events", events)
    assert out.returncode == 0, out.stderr
    figures = json.loads(out.stdout)
    assert set(figures) == {"events", "seconds", "events_per_s", "peak_rss_mb"}
    assert figures["events"] == 2000 and figures["seconds"] > 0 and figures["peak_rss_mb"] > 0


def test_version_prints_the_installed_version_and_exits_0() -> None:
    from gangline import __version__

    out = gangline("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"gangline {__version__}", out.stdout + out.stderr
