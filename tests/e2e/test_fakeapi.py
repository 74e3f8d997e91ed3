"""Self-check of tests/fakeapi.py: the real Claude Code CLI runs against it, offline on loopback."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kits.claude_cli import offline_env, print_argv
from kits.fakeapi import (
    FakeAnthropic,
    Turn,
    cut_after,
    hang,
    http_error,
    text_turn,
    thinking_block,
    tool_turn,
    tool_use_block,
)

MODEL = "claude-sonnet-4-5"  # billed at $3 / $15 per Mtok by the CLI


@dataclass
class Run:
    rc: int
    events: list[dict[str, Any]]
    stderr: str

    def of(self, type_: str, subtype: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == type_ and (subtype is None or e.get("subtype") == subtype)]

    @property
    def result(self) -> dict[str, Any]:
        results = self.of("result")
        assert len(results) == 1, f"expected one result line; rc={self.rc} stderr={self.stderr!r}"
        return results[0]


def run_claude(api: FakeAnthropic, cwd: Path, prompt: str, *, oauth: bool = False) -> Run:
    env = {"PATH": os.environ["PATH"], "LANG": "C.UTF-8", **offline_env(api.base_url, cwd.parent / "home", oauth=oauth)}
    args = print_argv(prompt, model=MODEL)
    proc = subprocess.run(args, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    return Run(proc.returncode, [json.loads(line) for line in proc.stdout.splitlines() if line.strip()], proc.stderr)


@pytest.mark.real_cli
def test_plain_text(repo: Path) -> None:
    with FakeAnthropic([text_turn("Hello from the fake.", input_tokens=1234, output_tokens=56)]) as api:
        run = run_claude(api, repo, "say hello")
    assert run.rc == 0, run.stderr
    res = run.result
    assert (res["subtype"], res["is_error"], res["result"]) == ("success", False, "Hello from the fake.")
    assert (res["usage"]["input_tokens"], res["usage"]["output_tokens"]) == (1234, 56)
    assert res["total_cost_usd"] == pytest.approx(1234 * 3e-6 + 56 * 15e-6)
    deltas = [e["event"] for e in run.of("stream_event") if e["event"]["type"] == "message_delta"]
    assert deltas[-1]["delta"]["stop_reason"] == "end_turn"
    [req] = api.requests
    assert (req["path"], req["turn"], req["headers"]["x-api-key"]) == ("/v1/messages", 0, "sk-fake-secret-value")
    assert req["body"]["stream"] is True and "tools" in req["body"]


@pytest.mark.real_cli
def test_write_tool_then_text(repo: Path) -> None:
    script = [
        tool_turn(
            "Write",
            {"file_path": "{cwd}/hello.txt", "content": "hello {world}\n"},
            id="toolu_w1",
            input_tokens=100,
            output_tokens=7,
        ),
        text_turn("Wrote hello.txt.", input_tokens=200, output_tokens=9),
    ]
    with FakeAnthropic(script) as api:
        run = run_claude(api, repo, "create hello.txt")
    assert run.rc == 0, run.stderr
    assert (repo / "hello.txt").read_text() == "hello {world}\n"
    [tool_use] = [b for e in run.of("assistant") for b in e["message"]["content"] if b["type"] == "tool_use"]
    assert tool_use == {
        "type": "tool_use",
        "id": "toolu_w1",
        "name": "Write",
        "input": {"file_path": f"{repo}/hello.txt", "content": "hello {world}\n"},
    }
    [result_msg] = [e for e in run.of("user") if e.get("tool_use_result")]
    assert result_msg["tool_use_result"]["type"] == "create"
    res = run.result
    assert (res["subtype"], res["result"], res["num_turns"]) == ("success", "Wrote hello.txt.", 2)
    assert (res["usage"]["input_tokens"], res["usage"]["output_tokens"]) == (300, 16)
    assert [r["turn"] for r in api.requests] == [0, 1]
    sent_back = api.requests[1]["body"]["messages"]
    assert any(
        b.get("type") == "tool_result" and b["tool_use_id"] == "toolu_w1"
        for m in sent_back
        if isinstance(m["content"], list)
        for b in m["content"]
    )


@pytest.mark.real_cli
def test_529_once_then_success(repo: Path) -> None:
    with FakeAnthropic([text_turn("Recovered.", output_tokens=5, errors=[http_error(529)])]) as api:
        run = run_claude(api, repo, "say hello")
    assert run.rc == 0, run.stderr
    [retry] = run.of("system", "api_retry")
    assert (retry["error_status"], retry["error"]) == (529, "overloaded")
    assert (run.result["subtype"], run.result["result"]) == ("success", "Recovered.")
    assert [r["reply"] for r in api.requests] == ["error 529", "ok"]


@pytest.mark.real_cli
def test_cut_stream_is_retried(repo: Path) -> None:
    with FakeAnthropic([text_turn("After the cut.", errors=[cut_after(3)])]) as api:
        run = run_claude(api, repo, "say hello")
    assert run.rc == 0, run.stderr
    assert run.result["result"] == "After the cut."
    assert [r["reply"] for r in api.requests] == ["cut after 3", "ok"]


@pytest.mark.real_cli
def test_oauth_429_unified_rate_limit_event(repo: Path) -> None:
    reset = 1795500000
    headers = {
        "anthropic-ratelimit-unified-status": "rejected",
        "anthropic-ratelimit-unified-reset": str(reset),
        "anthropic-ratelimit-unified-representative-claim": "five_hour",
    }
    with FakeAnthropic([text_turn("never sent", errors=[http_error(429, headers=headers)])]) as api:
        run = run_claude(api, repo, "say hello", oauth=True)
    assert run.rc == 1
    info = [e["rate_limit_info"] for e in run.of("rate_limit_event")]
    assert info and info[0]["status"] == "rejected" and info[0]["resetsAt"] == reset
    assert info[0]["rateLimitType"] == "five_hour"
    assert (run.result["is_error"], run.result["api_error_status"]) == (True, 429)
    assert [r["reply"] for r in api.main_requests()] == ["error 429"]  # OAuth 429s are not retried
    assert api.requests[0]["headers"]["authorization"] == "Bearer fake-oauth-token"
    assert "x-api-key" not in api.requests[0]["headers"]


def _post(api: FakeAnthropic, body: dict[str, Any], out: list[Any]) -> None:
    conn = http.client.HTTPConnection(api.base_url.removeprefix("http://"), timeout=30)
    try:
        conn.request("POST", "/v1/messages", json.dumps(body), {"content-type": "application/json"})
        resp = conn.getresponse()
        out.append(resp.read())
    except (ConnectionError, http.client.HTTPException) as exc:
        out.append(exc)
    finally:
        conn.close()


@pytest.mark.parametrize("how", ["release", "exit"])
def test_hang_until_release_or_exit(how: str) -> None:
    body = {"model": MODEL, "messages": [], "tools": [], "stream": True}
    out: list[Any] = []
    threads_before = threading.active_count()
    with FakeAnthropic([text_turn("late", errors=[hang()])]) as api:
        client = threading.Thread(target=_post, args=(api, body, out))
        client.start()
        assert api.wait_requests(1)
        if how == "release":
            api.release()
            client.join()
            assert isinstance(out[0], (ConnectionError, http.client.HTTPException))
            _post(api, body, out)  # the fault was used up: the retry gets the scripted answer
            assert b"event: message_stop" in out[1]
    client.join()
    assert threading.active_count() == threads_before  # server and handler threads all joined


def test_plain_http_surface() -> None:
    """What the CLI runs do not reach: non-streaming, side requests, other paths, error headers, cut points."""
    limit = {"anthropic-ratelimit-requests-remaining": "0", "retry-after": "1"}
    script = [
        Turn(
            [thinking_block("hmm"), tool_use_block("Read", {"file_path": "{cwd}/a.txt"}, id="t1")],
            input_tokens=7,
            output_tokens=3,
            errors=[http_error(429, headers=limit), cut_after(2)],
            headers={"anthropic-ratelimit-unified-status": "allowed"},
        )
    ]
    main = {
        "model": MODEL,
        "tools": [],
        "system": "x\nPrimary working directory: /w/d\n",
        "messages": [{"role": "user", "content": "hi"}],
    }
    with FakeAnthropic(script) as api:
        conn = http.client.HTTPConnection(api.base_url.removeprefix("http://"), timeout=30)

        def post(body: dict[str, Any], path: str = "/v1/messages?beta=true") -> tuple[int, Any, bytes]:
            conn.request("POST", path, json.dumps(body), {"content-type": "application/json"})
            resp = conn.getresponse()
            return resp.status, resp.headers, resp.read()

        status, _, data = post({"model": MODEL, "max_tokens": 1, "messages": []})  # no tools: not scripted
        assert status == 200 and json.loads(data)["content"] == [{"type": "text", "text": "ok"}]
        assert post(main, "/v1/messages/count_tokens")[0] == 200
        status, headers, data = post(main)
        assert status == 429 and headers["retry-after"] == "1" and headers["request-id"].startswith("req_")
        assert json.loads(data)["error"]["type"] == "rate_limit_error"
        conn.close()
        out: list[Any] = []
        _post(api, {**main, "stream": True}, out)  # message_start and ping, then a reset
        assert isinstance(out[0], (ConnectionError, http.client.HTTPException))
        conn = http.client.HTTPConnection(api.base_url.removeprefix("http://"), timeout=30)
        status, headers, data = post(main)  # faults used up; non-streaming gets the whole message
        assert status == 200 and headers["anthropic-ratelimit-unified-status"] == "allowed"
        msg = json.loads(data)
        assert msg["stop_reason"] == "tool_use" and msg["usage"]["output_tokens"] == 3
        assert msg["content"][1] == tool_use_block("Read", {"file_path": "/w/d/a.txt"}, id="t1")
        status, _, data = post({**main, "stream": True})
        events = [line.split(" ", 1)[1] for line in data.decode().splitlines() if line.startswith("event: ")]
        assert events[:2] == ["message_start", "ping"] and events[-2:] == ["message_delta", "message_stop"]
        partial = [json.loads(line[6:])["delta"] for line in data.decode().splitlines() if '"input_json_delta"' in line]
        assert partial[0]["partial_json"] == "" and json.loads("".join(d["partial_json"] for d in partial)) == {
            "file_path": "/w/d/a.txt"
        }
        conn.close()
    assert [r["reply"] for r in api.requests] == ["side", None, "error 429", "cut after 2", "ok", "ok"]
    assert [r["turn"] for r in api.main_requests()] == [0, 0, 0, 0]
