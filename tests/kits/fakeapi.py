"""Scripted fake of the Anthropic Messages API on loopback, so the real Claude Code CLI can run offline in tests.

The script, the faults and the server underneath are shared with the other wire formats: `fake_openai.py`
(OpenAI Responses, for Codex) and `fake_gemini.py` (Generative Language API, for Gemini CLI) build on
`FakeServer` here and answer the same `Turn`s.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import struct
import sys
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import urlsplit

Block = dict[str, Any]
JSON = dict[str, Any]
Headers = dict[str, str]

_ERRORS = {400: "invalid_request_error", 401: "authentication_error", 429: "rate_limit_error", 529: "overloaded_error"}
_CWD_RE = re.compile(r"Primary working directory: *([^\n]+)")
CHUNK = 40  # delta size, close to what the real APIs stream


@dataclass(frozen=True)
class Fault:
    """One injected failure; a turn's faults are used one per request before the turn answers normally."""

    status: int | None = None  # HTTP error status, sent with `body` (None: the format's own) and `headers`
    headers: Headers = field(default_factory=dict)
    body: JSON | None = None
    cut_after: int | None = None  # stream this many SSE events (ping included), then reset the connection
    hang: bool = False  # send nothing until release() or shutdown, then reset the connection


@dataclass
class Turn:
    """One scripted assistant message. Token counts are echoed verbatim, so tests can assert usage and cost."""

    content: list[Block]
    stop_reason: str | None = None  # None: "tool_use" if a tool_use block is present, else "end_turn"
    input_tokens: int = 1000
    output_tokens: int = 20
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    errors: list[Fault] = field(default_factory=list)
    headers: Headers = field(default_factory=dict)  # extra headers on the successful reply only
    reasoning_tokens: int = 0  # OpenAI and Gemini usage only; Anthropic has no such count


def new_id(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:24]


def text_block(text: str) -> Block:
    return {"type": "text", "text": text}


def thinking_block(thinking: str, signature: str = "fake-signature") -> Block:
    return {"type": "thinking", "thinking": thinking, "signature": signature}


def tool_use_block(name: str, input: JSON, id: str | None = None) -> Block:
    # The id is fixed when the script is built, so a retried request gets the same tool_use id.
    return {"type": "tool_use", "id": id or new_id("toolu_fake_"), "name": name, "input": input}


def custom_tool_block(name: str, input: str, id: str | None = None) -> Block:
    """A freeform (non-JSON) tool call, such as Codex's `apply_patch`; OpenAI Responses format only."""
    return {"type": "custom_tool_use", "id": id or new_id("call_fake_"), "name": name, "input": input}


def text_turn(text: str, **kw: Any) -> Turn:
    return Turn([text_block(text)], **kw)


def tool_turn(name: str, input: JSON, id: str | None = None, **kw: Any) -> Turn:
    return Turn([tool_use_block(name, input, id)], **kw)


def custom_tool_turn(name: str, input: str, id: str | None = None, **kw: Any) -> Turn:
    return Turn([custom_tool_block(name, input, id)], **kw)


def error_body(status: int, message: str | None = None, error_type: str | None = None) -> JSON:
    kind = error_type or _ERRORS.get(status, "api_error")
    return {"type": "error", "error": {"type": kind, "message": message or f"fake {status} ({kind})"}}


def http_error(status: int, message: str | None = None, *, headers: Headers | None = None) -> Fault:
    """An HTTP error reply in Anthropic's JSON shape; `headers` go on the error response (retry-after, rate limits)."""
    return Fault(status=status, headers=dict(headers or {}), body=error_body(status, message))


def cut_after(k: int) -> Fault:
    return Fault(cut_after=k)


def hang() -> Fault:
    return Fault(hang=True)


def chunks(s: str) -> list[str]:
    return [s[i : i + CHUNK] for i in range(0, len(s), CHUNK)]


def sse(data: JSON, event: str | None = None) -> bytes:
    """One server-sent event; Anthropic and OpenAI name theirs, Google sends bare `data:` lines."""
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data)}\n\n".encode()


def texts(value: Any) -> list[str]:
    """The strings in a content value: a string, or a list of blocks/parts with a `text`."""
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        return []
    return [b["text"] for b in value if isinstance(b, dict) and isinstance(b.get("text"), str)]


def subst(value: Any, cwd: str) -> Any:
    # Plain replace, not str.format: file contents in tool inputs may contain other braces.
    if isinstance(value, str):
        return value.replace("{cwd}", cwd)
    if isinstance(value, list):
        return [subst(v, cwd) for v in value]
    if isinstance(value, dict):
        return {k: subst(v, cwd) for k, v in value.items()}
    return value


class _Server(ThreadingHTTPServer):
    # Non-daemon handler threads, joined by server_close(): nothing outlives the `with` block.
    daemon_threads = False
    block_on_close = True

    def __init__(self, api: FakeServer) -> None:
        self.api = api
        self.live: set[socket.socket] = set()
        super().__init__(("127.0.0.1", 0), Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        # Tracked here, in the accept loop, so close() also sees connections whose thread has not started yet.
        with self.api._cond:
            self.live.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.api._cond:
            self.live.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        # Idle keep-alive connections would otherwise keep their handler threads blocked in readline().
        with self.api._cond:
            conns = list(self.live)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client hanging up mid-reply is routine here (retries, killed CLIs); anything else is a fake bug.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class Handler(BaseHTTPRequestHandler):
    """Reads and records each request, hands POSTs to the fake's format; the reply primitives are here."""

    protocol_version = "HTTP/1.1"  # keep-alive plus chunked SSE, as the real APIs
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # api.requests is the log; stderr noise would only clutter pytest output

    def do_GET(self) -> None:  # HEAD / is Claude 2.1.197's connection pre-warm; any status will do
        self.server.api._record(self, None)
        self.send_json(200, None if self.command == "HEAD" else {})

    do_HEAD = do_GET

    def do_POST(self) -> None:
        api = self.server.api
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = None
        with contextlib.suppress(ValueError):
            body = json.loads(raw) if raw else None
        entry = api._record(self, body)
        api._post(self, urlsplit(self.path).path, body, raw, entry)

    def send_json(self, status: int, payload: Any, headers: Headers | None = None) -> None:
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self._extra_headers(headers or {})
        if self.command != "HEAD":
            self.wfile.write(data)

    def send_sse(self, events: Sequence[bytes], headers: Headers, cut: int | None = None) -> None:
        """A 200 event stream, chunked; with `cut`, the connection is reset after that many events."""
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        self._extra_headers(headers)
        for n, event in enumerate(events):
            if cut is not None and n >= cut:
                return self.reset()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
        self.wfile.write(b"0\r\n\r\n")

    def _extra_headers(self, headers: Headers) -> None:
        self.send_header("request-id", new_id("req_fake_"))
        for key, value in headers.items():
            self.send_header(key, str(value))
        self.end_headers()

    def reset(self) -> None:
        # SO_LINGER 0 turns close() into a TCP RST: what a dropped upstream looks like (ECONNRESET) to the CLI.
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.rfile.close()  # drop the makefile() reference, otherwise close() does not close the fd
            self.connection.close()


Answer = Callable[[Turn, int | None], None]  # answer(turn, cut): the scripted reply, optionally cut short


class FakeServer:
    """The loopback server, script, faults and request log every wire format shares; subclasses speak one format.

    A subclass implements `_post` (route a POST; scripted requests go through `_play`) and `_error_body`.
    """

    def __init__(self, script: Sequence[Turn]) -> None:
        self.script = list(script)
        self.requests: list[JSON] = []  # {method, path, query, headers (lowercased), body, turn, reply}
        self._cond = threading.Condition()
        self._faults_used: dict[int, int] = {}  # per turn, on the server: retries re-send the same turn
        self._released = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None, f"{type(self).__name__} is not started; use it as a context manager"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> Self:
        self._server = _Server(self)
        self._thread = threading.Thread(target=self._server.serve_forever, name="fakeapi", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.release()
        if self._server is None or self._thread is None:
            return
        self._server.shutdown()
        self._server.drop_connections()
        self._server.server_close()  # joins every handler thread
        self._thread.join()
        self._server = self._thread = None

    def release(self) -> None:
        """End every hang, now and later: hung requests get a connection reset, later hang() faults too."""
        self._released.set()

    def wait_requests(self, n: int, timeout: float = 30.0) -> bool:
        """Block until at least n requests have arrived, e.g. until the CLI sits in a hang()."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self.requests) >= n, timeout)

    def main_requests(self) -> list[JSON]:
        """The scripted (main-loop) requests, those given a turn: side requests and other paths have turn None."""
        return [r for r in self.requests if r["turn"] is not None]

    def _record(self, handler: Handler, body: Any) -> JSON:
        url = urlsplit(handler.path)
        headers = {k.lower(): v for k, v in handler.headers.items()}
        entry = {"method": handler.command, "path": url.path, "query": url.query, "headers": headers, "body": body}
        entry.update(turn=None, reply=None)  # filled in by the handler once it knows
        with self._cond:
            self.requests.append(entry)
            self._cond.notify_all()
        return entry

    def _post(self, h: Handler, path: str, body: Any, raw: bytes, entry: JSON) -> None:
        raise NotImplementedError

    def _error_body(self, status: int, message: str | None = None) -> JSON:
        raise NotImplementedError

    def _play(self, h: Handler, entry: JSON, turn_no: int, answer: Answer) -> None:
        """Serve script turn `turn_no`: its next unused fault, else its answer; past the end, a 400.

        The turn index is computed from the request (stateless), so retries and resumes land on the right turn.
        A 400 gets no delayed retries from the CLIs, so a too-short script fails fast and visibly.
        """
        entry["turn"] = turn_no
        if turn_no >= len(self.script):
            entry["reply"] = "exhausted"
            return h.send_json(400, self._error_body(400, f"fakeapi: script has no turn {turn_no}"))
        turn = self.script[turn_no]
        with self._cond:
            used = self._faults_used.get(turn_no, 0)
            fault = turn.errors[used] if used < len(turn.errors) else None
            self._faults_used[turn_no] = used + (fault is not None)
        if fault is None:
            entry["reply"] = "ok"
            return answer(turn, None)
        if fault.hang:
            entry["reply"] = "hang"
            self._released.wait()
            return h.reset()
        if fault.cut_after is not None:
            entry["reply"] = f"cut after {fault.cut_after}"
            return answer(turn, fault.cut_after)
        status = fault.status or 500
        entry["reply"] = f"error {status}"
        h.send_json(status, fault.body or self._error_body(status), fault.headers)


def _usage(turn: Turn, output_tokens: int) -> JSON:
    keys = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    return {**{k: getattr(turn, k) for k in keys}, "output_tokens": output_tokens}


def _stop_reason(turn: Turn) -> str:
    if turn.stop_reason:
        return turn.stop_reason
    return "tool_use" if any(b["type"] == "tool_use" for b in turn.content) else "end_turn"


def _message(turn: Turn, content: list[Block], model: str, *, final: bool = True) -> JSON:
    # As the real API: message_start has no stop_reason and output_tokens 1; the final values come in message_delta.
    usage = {**_usage(turn, turn.output_tokens if final else 1), "service_tier": "standard"}
    head = {"id": new_id("msg_fake_"), "type": "message", "role": "assistant", "model": model, "content": content}
    return {**head, "stop_reason": _stop_reason(turn) if final else None, "stop_sequence": None, "usage": usage}


def _sse_events(turn: Turn, content: list[Block], model: str) -> list[JSON]:
    """The stream's events; each event's SSE name is its `type`."""
    events: list[JSON] = [{"type": "message_start", "message": _message(turn, [], model, final=False)}]
    events.append({"type": "ping"})
    for i, block in enumerate(content):
        if block["type"] == "text":
            first: Block = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": c} for c in chunks(block["text"])]
        elif block["type"] == "thinking":
            first = {"type": "thinking", "thinking": "", "signature": ""}
            deltas = [{"type": "thinking_delta", "thinking": c} for c in chunks(block["thinking"])]
            deltas.append({"type": "signature_delta", "signature": block["signature"]})
        elif block["type"] == "tool_use":
            first = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            parts = ["", *chunks(json.dumps(block["input"]))]  # the real API opens with an empty partial_json
            deltas = [{"type": "input_json_delta", "partial_json": c} for c in parts]
        else:
            raise ValueError(f"fakeapi: unsupported block type {block['type']!r}")
        events.append({"type": "content_block_start", "index": i, "content_block": first})
        events += [{"type": "content_block_delta", "index": i, "delta": d} for d in deltas]
        events.append({"type": "content_block_stop", "index": i})
    delta = {"stop_reason": _stop_reason(turn), "stop_sequence": None}
    events.append({"type": "message_delta", "delta": delta, "usage": _usage(turn, turn.output_tokens)})
    return [*events, {"type": "message_stop"}]


def _cwd_of(body: JSON) -> str:
    # 2.1.197 put the environment block in `system`; 2.1.330 moved it into a <system-reminder> of the first
    # user message. Search both, system first.
    found = texts(body.get("system")) + [t for m in body.get("messages", []) for t in texts(m.get("content"))]
    for text in found:
        if m := _CWD_RE.search(text):
            return m.group(1).strip()
    return ""


class FakeAnthropic(FakeServer):
    """`with FakeAnthropic([text_turn("hi")]) as api:` then point ANTHROPIC_BASE_URL at `api.base_url`."""

    def _error_body(self, status: int, message: str | None = None) -> JSON:
        return error_body(status, message)

    def _post(self, h: Handler, path: str, body: Any, raw: bytes, entry: JSON) -> None:
        if path.endswith("/count_tokens"):
            return h.send_json(200, {"input_tokens": len(raw) // 4})
        if not path.endswith("/messages") or not isinstance(body, dict):
            return h.send_json(200, {})
        if "tools" not in body:  # side request (quota check, title...): answered, but not part of the script
            entry["reply"] = "side"
            return self._answer(h, text_turn("ok", input_tokens=8, output_tokens=1), body, None)
        # Stateless turn index, so retries, --resume and non-streaming fallbacks all land on the right turn.
        # (2.1.330 re-sends a 400 at once, up to 5 times with fewer anthropic-beta values: each is answered too.)
        turn_no = sum(1 for m in body.get("messages", []) if m.get("role") == "assistant")
        self._play(h, entry, turn_no, lambda turn, cut: self._answer(h, turn, body, cut))

    def _answer(self, h: Handler, turn: Turn, body: JSON, cut: int | None) -> None:
        content = subst(turn.content, _cwd_of(body))
        model = str(body.get("model", "claude-fake"))
        if not body.get("stream"):  # the CLI's non-streaming fallback: same turn, one JSON message
            if cut is not None:
                return h.reset()
            return h.send_json(200, _message(turn, content, model), turn.headers)
        events = [sse(data, data["type"]) for data in _sse_events(turn, content, model)]
        h.send_sse(events, turn.headers, cut)
