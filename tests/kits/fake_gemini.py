"""Scripted fake of the Gemini (Generative Language) API on loopback, for the real Gemini CLI.

Same `Turn`s and faults as `fakeapi.FakeAnthropic`; the blocks map to parts of one `model` content: text -> `text`,
thinking -> `text` with `thought: true`, tool_use -> `functionCall` (name and args; the id is not sent, as the
real API does not send one).
"""

from __future__ import annotations

import re
from typing import Any

from kits.fakeapi import (
    JSON,
    Block,
    FakeServer,
    Fault,
    Handler,
    Headers,
    Turn,
    chunks,
    cut_after,
    hang,
    new_id,
    sse,
    subst,
    text_block,
    text_turn,
    texts,
    thinking_block,
    tool_turn,
    tool_use_block,
)

__all__ = [
    "FakeGemini",
    "Fault",
    "Turn",
    "cut_after",
    "error_body",
    "hang",
    "http_error",
    "text_block",
    "text_turn",
    "thinking_block",
    "tool_turn",
    "tool_use_block",
]

_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_CWD_RE = re.compile(r"Workspace Directories:\**\s*\n\s*- *([^\n]+)")


def error_body(status: int, message: str | None = None, *, status_name: str | None = None) -> JSON:
    name = status_name or _STATUS.get(status, "UNKNOWN")
    return {"error": {"code": status, "message": message or f"fake {status} ({name})", "status": name}}


def http_error(
    status: int, message: str | None = None, *, headers: Headers | None = None, status_name: str | None = None
) -> Fault:
    """An HTTP error reply in Google's JSON shape, e.g. `http_error(429)` is RESOURCE_EXHAUSTED."""
    return Fault(status=status, headers=dict(headers or {}), body=error_body(status, message, status_name=status_name))


def turn_index(body: JSON) -> int:
    """The number of `model` contents in the request: one per earlier assistant turn."""
    return sum(1 for c in body.get("contents") or [] if isinstance(c, dict) and c.get("role") == "model")


def _cwd_of(body: JSON) -> str:
    found = texts((body.get("systemInstruction") or {}).get("parts"))
    for content in body.get("contents") or []:
        if isinstance(content, dict):
            found += texts(content.get("parts"))
    for text in found:
        if m := _CWD_RE.search(text):
            return m.group(1).strip()
    return ""


def _usage(turn: Turn) -> JSON:
    # Google counts cached tokens inside promptTokenCount and thoughts apart from candidates: echoed as given.
    total = turn.input_tokens + turn.output_tokens + turn.reasoning_tokens
    usage = {"promptTokenCount": turn.input_tokens, "candidatesTokenCount": turn.output_tokens}
    usage |= {"totalTokenCount": total, "cachedContentTokenCount": turn.cache_read_input_tokens}
    return usage | {"thoughtsTokenCount": turn.reasoning_tokens}


def _parts(block: Block) -> list[JSON]:
    """A block as the parts it streams in: text in chunks, a function call whole."""
    kind = block["type"]
    if kind == "text":
        return [{"text": c} for c in chunks(block["text"])]
    if kind == "thinking":
        return [{"text": c, "thought": True} for c in chunks(block["thinking"])]
    if kind == "tool_use":
        return [{"functionCall": {"name": block["name"], "args": block["input"]}}]
    raise ValueError(f"fake_gemini: unsupported block type {kind!r}")


def stream_chunks(turn: Turn, content: list[Block], model: str) -> list[JSON]:
    """The stream's `data:` payloads, one part each; the last carries finishReason and usageMetadata."""
    parts = [p for block in content for p in _parts(block)] or [{"text": ""}]
    response_id = new_id("fake-")
    out: list[JSON] = []
    for part in parts:
        candidate: JSON = {"content": {"role": "model", "parts": [part]}, "index": 0}
        out.append({"candidates": [candidate], "modelVersion": model, "responseId": response_id})
    out[-1]["candidates"][0]["finishReason"] = "STOP"
    out[-1]["usageMetadata"] = _usage(turn)
    return out


def _whole(turn: Turn, content: list[Block], model: str) -> JSON:
    """The non-streaming (generateContent) reply: all parts in one candidate."""
    parts = [p for block in content for p in _parts(block)] or [{"text": ""}]
    candidate = {"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}
    return {"candidates": [candidate], "usageMetadata": _usage(turn), "modelVersion": model}


class FakeGemini(FakeServer):
    """`with FakeGemini([text_turn("hi")]) as api:` then point GOOGLE_GEMINI_BASE_URL at `api.base_url`.

    `POST /v1beta/models/<model>:streamGenerateContent` carrying `tools` is a scripted turn; `:generateContent`
    and tool-less streams (session summaries, checks) are side requests answered "ok" (turn None);
    `:countTokens` gets a rough count, any other path `{}`.
    """

    def _error_body(self, status: int, message: str | None = None) -> JSON:
        return error_body(status, message)

    def _post(self, h: Handler, path: str, body: Any, raw: bytes, entry: JSON) -> None:
        resource, _, method = path.rpartition(":")
        model = resource.rpartition("/")[2] or "gemini-fake"
        if method == "countTokens":
            return h.send_json(200, {"totalTokens": len(raw) // 4})
        if method not in ("streamGenerateContent", "generateContent") or not isinstance(body, dict):
            return h.send_json(200, {})
        stream = method == "streamGenerateContent"
        if not stream or "tools" not in body:
            entry["reply"] = "side"
            return self._answer(h, text_turn("ok", input_tokens=8, output_tokens=1), body, model, stream, None)
        self._play(h, entry, turn_index(body), lambda turn, cut: self._answer(h, turn, body, model, True, cut))

    def _answer(self, h: Handler, turn: Turn, body: JSON, model: str, stream: bool, cut: int | None) -> None:
        content = subst(turn.content, _cwd_of(body))
        if not stream:
            return h.reset() if cut is not None else h.send_json(200, _whole(turn, content, model), turn.headers)
        h.send_sse([sse(c) for c in stream_chunks(turn, content, model)], turn.headers, cut)
