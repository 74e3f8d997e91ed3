"""The stream-json lines the fake CLI prints, in the shapes Claude Code 2.1.x prints them.

They mirror REAL_CLI.md section 5 and the recorded transcripts, with ``--include-partial-messages``,
so gangline's parser reads the fake as it reads the real CLI.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from gangline.fake.scenario import FAKE_VERSION, ResultSpec, TokenUsage

_TOOLS = ["Task", "Bash", "Edit", "Glob", "Grep", "NotebookEdit", "Read", "TodoWrite", "WebFetch", "WebSearch", "Write"]
# $/token (input, output) as the CLI bills them; an unknown model is billed like Opus.
_PRICES = {"haiku": (1e-6, 5e-6), "sonnet": (3e-6, 15e-6)}
_UNKNOWN_PRICE = (5e-6, 25e-6)


def _uid() -> str:
    return str(uuid.uuid4())


def _timestamp() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"


def _chunks(text: str, parts: int = 3) -> list[str]:
    size = max(1, -(-len(text) // parts))
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def _clock(epoch: int) -> str:
    t = time.gmtime(epoch)
    hour, suffix = t.tm_hour % 12 or 12, "am" if t.tm_hour < 12 else "pm"
    return f"{hour}:{t.tm_min:02d}{suffix}" if t.tm_min else f"{hour}{suffix}"


def _add(a: TokenUsage, b: TokenUsage) -> TokenUsage:
    return TokenUsage(
        a.input_tokens + b.input_tokens,
        a.output_tokens + b.output_tokens,
        a.cache_creation_input_tokens + b.cache_creation_input_tokens,
        a.cache_read_input_tokens + b.cache_read_input_tokens,
    )


def model_cost(model: str, used: TokenUsage) -> float:
    price_in, price_out = next((p for name, p in _PRICES.items() if name in model), _UNKNOWN_PRICE)
    return used.input_tokens * price_in + used.output_tokens * price_out


def _usage(u: TokenUsage) -> dict[str, Any]:
    return {
        "input_tokens": u.input_tokens,
        "cache_creation_input_tokens": u.cache_creation_input_tokens,
        "cache_read_input_tokens": u.cache_read_input_tokens,
        "output_tokens": u.output_tokens,
    }


def _api_message(mid: str, model: str, content: list[dict[str, Any]], usage: dict[str, Any]) -> dict[str, Any]:
    # An assistant message as the CLI forwards it: stop_reason is null until message_delta.
    return {
        "id": mid,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": None,
        "stop_sequence": None,
        "usage": usage,
    }


Line = dict[str, Any]


@dataclass
class Stream:
    """Builds the lines of one session and keeps its turn and token totals."""

    session_id: str
    model: str
    cwd: str
    turns: int = 0
    tokens: dict[str, TokenUsage] = field(default_factory=dict)

    def _line(self, obj: Line) -> Line:
        return {**obj, "session_id": self.session_id, "uuid": _uid()}

    def _event(self, event: Line) -> Line:
        return self._line({"type": "stream_event", "event": event, "parent_tool_use_id": None})

    def init(self, permission_mode: str) -> Line:
        return self._line(
            {
                "type": "system",
                "subtype": "init",
                "cwd": self.cwd,
                "tools": _TOOLS,
                "mcp_servers": [],
                "model": self.model,
                "permissionMode": permission_mode,
                "apiKeySource": "none",
                "claude_code_version": FAKE_VERSION,
                "output_style": "default",
            }
        )

    def text_message(self, text: str) -> list[Line]:
        deltas = [{"type": "text_delta", "text": chunk} for chunk in _chunks(text)]
        return self._message({"type": "text", "text": ""}, deltas, {"type": "text", "text": text}, "end_turn", text)

    def tool_message(self, name: str, tool_input: dict[str, Any]) -> tuple[str, list[Line]]:
        """A message whose one block calls ``name``; returns the tool_use id for its result."""
        tool_id = f"toolu_fake_{uuid.uuid4().hex[:24]}"
        args = json.dumps(tool_input, ensure_ascii=False)
        deltas = [{"type": "input_json_delta", "partial_json": p} for p in ["", *_chunks(args)]]
        start: Line = {"type": "tool_use", "id": tool_id, "name": name, "input": {}}
        return tool_id, self._message(start, deltas, {**start, "input": tool_input}, "tool_use", args)

    def _message(self, start: Line, deltas: list[Line], block: Line, stop: str, payload: str) -> list[Line]:
        usage = TokenUsage(input_tokens=2000 + 100 * self.turns, output_tokens=max(1, len(payload) // 4))
        mid, opening, closing = self._envelope(self.model, usage, stop)
        placeholder = {**_usage(usage), "output_tokens": 1}
        # As the real CLI does, the complete block goes out before its content_block_stop.
        assistant = _api_message(mid, self.model, [block], placeholder)
        return [
            *opening,
            self._event({"type": "content_block_start", "index": 0, "content_block": start}),
            *(self._event({"type": "content_block_delta", "index": 0, "delta": d}) for d in deltas),
            self._line({"type": "assistant", "message": assistant, "parent_tool_use_id": None}),
            self._event({"type": "content_block_stop", "index": 0}),
            *closing,
        ]

    def usage_message(self, model: str, usage: TokenUsage) -> list[Line]:
        """A message with no blocks that reports ``usage``: a server can price a run mid-way."""
        _mid, opening, closing = self._envelope(model, usage, "end_turn")
        return [*opening, *closing]

    def _envelope(self, model: str, usage: TokenUsage, stop: str) -> tuple[str, list[Line], list[Line]]:
        """The status and message_start before a message's blocks; message_delta and message_stop after."""
        self.turns += 1
        self.tokens[model] = _add(self.tokens.get(model, TokenUsage(0, 0)), usage)
        mid = f"msg_fake_{uuid.uuid4().hex[:24]}"
        first = {**_usage(usage), "output_tokens": 1, "service_tier": "standard"}
        opening = [
            self._line({"type": "system", "subtype": "status", "status": "requesting"}),
            self._event({"type": "message_start", "message": _api_message(mid, model, [], first)}),
        ]
        delta = {"stop_reason": stop, "stop_sequence": None}
        closing = [
            self._event({"type": "message_delta", "delta": delta, "usage": _usage(usage)}),
            self._event({"type": "message_stop"}),
        ]
        return mid, opening, closing

    def tool_result(self, tool_id: str, content: str, is_error: bool, detail: object) -> Line:
        block = {"tool_use_id": tool_id, "type": "tool_result", "content": content, "is_error": is_error}
        return self._line(
            {
                "type": "user",
                "message": {"role": "user", "content": [block]},
                "parent_tool_use_id": None,
                "timestamp": _timestamp(),
                "tool_use_result": f"Error: {content}" if is_error else detail,
            }
        )

    def rate_limited(self, resets_at: int, limit_type: str) -> tuple[str, list[Line]]:
        """A hard block as the CLI reports it in OAuth mode: the event, then a synthetic error message."""
        info = {"status": "rejected", "resetsAt": resets_at, "rateLimitType": limit_type, "isUsingOverage": False}
        text = f"You've hit your session limit · resets {_clock(resets_at)} (UTC)"
        message = _api_message(_uid(), "<synthetic>", [{"type": "text", "text": text}], _usage(TokenUsage(0, 0)))
        message |= {"stop_reason": "stop_sequence", "stop_sequence": ""}
        assistant = {"type": "assistant", "message": message, "parent_tool_use_id": None, "error": "rate_limit"}
        return text, [self._line({"type": "rate_limit_event", "rate_limit_info": info}), self._line(assistant)]

    def cost(self) -> float:
        """What the tokens so far cost at list prices, as the CLI computes ``total_cost_usd``."""
        return sum(model_cost(model, used) for model, used in self.tokens.items())

    def result(self, outcome: ResultSpec, text: str | None, cost: float, started: float, **extra: Any) -> Line:
        """The last line; ``text`` None leaves out ``result``, as error_max_turns does."""
        totals = TokenUsage(0, 0)
        for used in self.tokens.values():
            totals = _add(totals, used)
        line: Line = {
            "type": "result",
            "subtype": outcome.subtype,
            "is_error": outcome.is_error,
            "api_error_status": None,
            "duration_ms": int((time.time() - started) * 1000),
            "num_turns": self.turns,
            "result": text,
            "stop_reason": "end_turn",
            "total_cost_usd": cost,
            "usage": _usage(totals),
            "modelUsage": {model: _model_usage(model, used) for model, used in self.tokens.items()},
            "permission_denials": [],
            "terminal_reason": outcome.terminal_reason,
            "errors": list(outcome.errors),
        }
        if text is None:
            del line["result"]
        if not outcome.errors:
            del line["errors"]
        return self._line(line | extra)


def _model_usage(model: str, used: TokenUsage) -> Line:
    return {
        "inputTokens": used.input_tokens,
        "outputTokens": used.output_tokens,
        "cacheReadInputTokens": used.cache_read_input_tokens,
        "cacheCreationInputTokens": used.cache_creation_input_tokens,
        "webSearchRequests": 0,
        "costUSD": model_cost(model, used),
        "contextWindow": 200000,
        "maxOutputTokens": 32000,
    }
