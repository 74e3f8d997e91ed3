"""Scripted fake of the OpenAI Responses API (`POST /v1/responses`, SSE) on loopback, for the real Codex CLI.

Same `Turn`s and faults as `fakeapi.FakeAnthropic`; the blocks map to Responses output items: text -> `message`,
thinking -> `reasoning` (as a summary), tool_use -> `function_call`, custom_tool_use -> `custom_tool_call`.
"""

from __future__ import annotations

import json
import re
import time
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
    custom_tool_block,
    custom_tool_turn,
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
    "FakeResponses",
    "Fault",
    "Turn",
    "custom_tool_block",
    "custom_tool_turn",
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

_ERRORS: dict[int, tuple[str, str | None]] = {  # status -> (type, code), as api.openai.com sends them
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
}
_CWD_RE = re.compile(r"<cwd>([^<]+)</cwd>")


def error_body(status: int, message: str | None = None, *, type: str | None = None, code: str | None = None) -> JSON:
    kind, default_code = _ERRORS.get(status, ("server_error", None))
    kind = type or kind
    return {"error": {"message": message or f"fake {status} ({kind})", "type": kind, "code": code or default_code}}


def http_error(
    status: int,
    message: str | None = None,
    *,
    headers: Headers | None = None,
    type: str | None = None,
    code: str | None = None,
) -> Fault:
    """An HTTP error reply in OpenAI's JSON shape, e.g. `http_error(429, code="insufficient_quota")`."""
    return Fault(status=status, headers=dict(headers or {}), body=error_body(status, message, type=type, code=code))


def _assistant_made(item: Any) -> bool:
    """Output items the model produced (message role assistant, reasoning, *_call), not inputs or tool outputs."""
    if not isinstance(item, dict):
        return False
    if "role" in item:
        return bool(item["role"] == "assistant")
    kind = str(item.get("type", ""))
    return kind != "message" and not kind.endswith("_output")


def turn_index(body: JSON) -> int:
    """The number of maximal runs of model-produced items in `input`: one per earlier assistant turn."""
    runs, prev = 0, False
    for item in body.get("input") or []:
        cur = _assistant_made(item)
        runs += cur and not prev
        prev = cur
    return runs


def _cwd_of(body: JSON) -> str:
    items = body.get("input")
    found = texts(body.get("instructions"))
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict):
            found += texts(item.get("content"))
    for text in found:
        if m := _CWD_RE.search(text):
            return m.group(1).strip()
    return ""


def _usage(turn: Turn) -> JSON:
    # OpenAI counts cached tokens inside input_tokens and reasoning inside output_tokens: echoed as given.
    return {
        "input_tokens": turn.input_tokens,
        "input_tokens_details": {"cached_tokens": turn.cache_read_input_tokens},
        "output_tokens": turn.output_tokens,
        "output_tokens_details": {"reasoning_tokens": turn.reasoning_tokens},
        "total_tokens": turn.input_tokens + turn.output_tokens,
    }


def _item_events(block: Block, out: int) -> tuple[list[JSON], JSON]:
    """The stream events of one output item (without output_item.added/done) and the finished item."""
    at: JSON = {"output_index": out}
    kind = block["type"]
    if kind == "text":
        item_id = new_id("msg_fake_")
        part = {"type": "output_text", "text": block["text"], "annotations": []}
        ref = {"item_id": item_id, **at, "content_index": 0}
        events = [{"type": "response.content_part.added", **ref, "part": {**part, "text": ""}}]
        events += [{"type": "response.output_text.delta", **ref, "delta": c} for c in chunks(block["text"])]
        events.append({"type": "response.output_text.done", **ref, "text": block["text"]})
        events.append({"type": "response.content_part.done", **ref, "part": part})
        item: JSON = {"type": "message", "id": item_id, "role": "assistant", "status": "completed", "content": [part]}
    elif kind == "thinking":
        item_id = new_id("rs_fake_")
        summary = {"type": "summary_text", "text": block["thinking"]}
        ref = {"item_id": item_id, **at, "summary_index": 0}
        events = [{"type": "response.reasoning_summary_part.added", **ref, "part": {**summary, "text": ""}}]
        events += [
            {"type": "response.reasoning_summary_text.delta", **ref, "delta": c} for c in chunks(summary["text"])
        ]
        events.append({"type": "response.reasoning_summary_text.done", **ref, "text": summary["text"]})
        events.append({"type": "response.reasoning_summary_part.done", **ref, "part": summary})
        item = {"type": "reasoning", "id": item_id, "summary": [summary], "encrypted_content": None}
    elif kind == "tool_use":
        item_id, args = new_id("fc_fake_"), json.dumps(block["input"])
        ref = {"item_id": item_id, **at}
        events = [{"type": "response.function_call_arguments.delta", **ref, "delta": c} for c in chunks(args)]
        events.append({"type": "response.function_call_arguments.done", **ref, "arguments": args})
        call = {"call_id": block["id"], "name": block["name"], "arguments": args}
        item = {"type": "function_call", "id": item_id, **call, "status": "completed"}
    elif kind == "custom_tool_use":
        item_id = new_id("ctc_fake_")
        ref = {"item_id": item_id, **at}
        events = [{"type": "response.custom_tool_call_input.delta", **ref, "delta": c} for c in chunks(block["input"])]
        events.append({"type": "response.custom_tool_call_input.done", **ref, "input": block["input"]})
        call = {"call_id": block["id"], "name": block["name"], "input": block["input"]}
        item = {"type": "custom_tool_call", "id": item_id, **call, "status": "completed"}
    else:
        raise ValueError(f"fake_openai: unsupported block type {kind!r}")
    return events, item


def _opened(item: JSON) -> JSON:
    """An item as output_item.added shows it: in progress, with nothing generated yet."""
    empty: dict[str, JSON] = {"message": {"content": []}, "reasoning": {"summary": []}}
    empty |= {"function_call": {"arguments": ""}, "custom_tool_call": {"input": ""}}
    opened = {**item, **empty[item["type"]]}
    if "status" in item:
        opened["status"] = "in_progress"
    return opened


def _response(resp_id: str, turn: Turn, model: str, output: list[JSON], *, final: bool) -> JSON:
    return {
        "id": resp_id,
        "object": "response",
        "created_at": int(time.time()),
        "status": "completed" if final else "in_progress",
        "model": model,
        "output": output,
        "usage": _usage(turn) if final else None,
    }


def sse_events(turn: Turn, content: list[Block], model: str) -> tuple[list[JSON], JSON]:
    """The stream's events (each SSE event is named by its `type`) and the completed response object."""
    resp_id = new_id("resp_fake_")
    started = _response(resp_id, turn, model, [], final=False)
    events: list[JSON] = [{"type": "response.created", "response": started}]
    events.append({"type": "response.in_progress", "response": started})
    output: list[JSON] = []
    for n, block in enumerate(content):
        inner, item = _item_events(block, n)
        events.append({"type": "response.output_item.added", "output_index": n, "item": _opened(item)})
        events += inner
        events.append({"type": "response.output_item.done", "output_index": n, "item": item})
        output.append(item)
    final = _response(resp_id, turn, model, output, final=True)
    events.append({"type": "response.completed", "response": final})
    return [{**event, "sequence_number": n} for n, event in enumerate(events)], final


class FakeResponses(FakeServer):
    """`with FakeResponses([text_turn("hi")]) as api:` then give Codex a provider with base_url `api.base_url + "/v1"`.

    `POST .../responses` carrying `tools` is a scripted turn; one without is a side request, answered "ok"
    (turn None); any other path gets `{}`.
    """

    def _error_body(self, status: int, message: str | None = None) -> JSON:
        return error_body(status, message)

    def _post(self, h: Handler, path: str, body: Any, raw: bytes, entry: JSON) -> None:
        if not path.endswith("/responses") or not isinstance(body, dict):
            return h.send_json(200, {})
        if "tools" not in body:
            entry["reply"] = "side"
            return self._answer(h, text_turn("ok", input_tokens=8, output_tokens=1), body, None)
        self._play(h, entry, turn_index(body), lambda turn, cut: self._answer(h, turn, body, cut))

    def _answer(self, h: Handler, turn: Turn, body: JSON, cut: int | None) -> None:
        content = subst(turn.content, _cwd_of(body))
        events, final = sse_events(turn, content, str(body.get("model", "gpt-fake")))
        if body.get("stream") is False:
            return h.reset() if cut is not None else h.send_json(200, final, turn.headers)
        h.send_sse([sse(e, e["type"]) for e in events], turn.headers, cut)
