"""The questions put to people about agents' tool calls: asked, waited on, answered or timed out.

The rules decide first (``core.rules``, first match wins); what no rule decides waits for a
person, at most ``ask_timeout_s``, or is denied at once when the project runs unattended.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from gangline.core.errors import NotFoundError
from gangline.core.rules import (
    CHAT_OWN_TOOLS,
    OWN_TOOLS,
    Answer,
    Answered,
    Decision,
    PermissionPolicy,
    PermissionRequest,
    Rule,
    Ruling,
    parse_rule,
    rule_decision,
    rule_for,
)
from gangline.store import Store

_INPUT_CHARS = 2000  # of a tool's input kept in an event row
# Said wherever the questions are asked for and no server keeps them (a command on the store).
NOT_SERVED = "no server running: permission requests exist only inside a running gangline serve (or run)"


def _timeout_message(tool_name: str, seconds: float) -> str:
    return (
        f"No one answered the request to use {tool_name} within {seconds:g} s, so it is denied. "
        "Continue without this tool, or stop and say which permission you need."
    )


def _unattended_message(tool_name: str) -> str:
    return (
        f"gangline is running unattended and no rule allows {tool_name}, so it is denied. Continue without it, "
        "or stop and say which permission you need (a person can add an allow rule under [permissions] in "
        ".gangline/project.toml)."
    )


def _rule_denial(tool_name: str, ruling: Ruling) -> str:
    return f"{tool_name} is {ruling.why} in this project. Do not retry it; continue without it or stop and explain."


class Permissions:
    """Decides tool calls and keeps the questions put to people; in memory, like the runs that ask them."""

    def __init__(
        self,
        store: Store,
        policy: PermissionPolicy,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store  # its event writes wake the event stream's viewers
        self.clock = clock
        self.reconfigure(policy)
        self._pending: dict[str, tuple[PermissionRequest, asyncio.Future[Answer]]] = {}
        self._asked = asyncio.Condition()

    def reconfigure(self, policy: PermissionPolicy) -> None:
        """The project's ``[permissions]`` as edited; questions already put keep their own timeout."""
        self.policy = policy
        self._deny = [parse_rule(text) for text in policy.deny]
        self._allow = [parse_rule(text) for text in policy.allow]

    def rules(self) -> tuple[list[Rule], list[Rule]]:
        """(deny, allow): the project's rules, then the ones saved by "always allow"."""
        deny, allow = list(self._deny), list(self._allow)
        for row in self.store.permission_rules():
            (allow if row.decision == "allow" else deny).append(Rule(row.tool, row.pattern))
        return deny, allow

    async def ask(
        self,
        run_id: str,
        item_id: int | None,
        cwd: Path | None,
        tool_name: str,
        tool_input: dict[str, Any],
        tool_use_id: str | None,
    ) -> Answer:
        """Decide one tool call; waits (bounded) when a person must answer."""
        own = OWN_TOOLS if item_id is not None else CHAT_OWN_TOOLS  # no item: the chat agent asks
        ruling = rule_decision(tool_name, tool_input, cwd, *self.rules(), own=own)
        if ruling is not None and ruling.allowed:
            return Answer("allow", tool_input)
        if ruling is not None:
            return self._denied(run_id, item_id, tool_name, ruling.why, _rule_denial(tool_name, ruling))
        if self.policy.unattended:
            return self._denied(run_id, item_id, tool_name, "unattended", _unattended_message(tool_name))
        return await self._wait_for_person(run_id, item_id, tool_name, tool_input, tool_use_id)

    def _denied(self, run_id: str, item_id: int | None, tool_name: str, why: str, message: str) -> Answer:
        data = {"tool": tool_name, "why": why}
        self.store.record_event(
            "permission_denied", "gangline", item_id=item_id, run_id=run_id, reason=message, data=data
        )
        return Answer("deny", message=message)

    async def _wait_for_person(
        self, run_id: str, item_id: int | None, tool_name: str, tool_input: dict[str, Any], tool_use_id: str | None
    ) -> Answer:
        now = self.clock()
        timeout = self.policy.ask_timeout_s
        request = PermissionRequest(
            uuid.uuid4().hex[:16], run_id, item_id, tool_name, tool_input, tool_use_id, now, now + timeout
        )
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._pending[request.id] = (request, future)
        try:
            data = {
                "request_id": request.id,
                "tool": tool_name,
                "input": _shown(tool_input),
                "tool_use_id": tool_use_id,
            }
            self.store.record_event(
                "permission_requested", f"agent:{run_id}", item_id=item_id, run_id=run_id, reason=tool_name, data=data
            )
            async with self._asked:
                self._asked.notify_all()
            try:
                async with asyncio.timeout(timeout):
                    return await asyncio.shield(future)
            except TimeoutError:
                if future.done():  # answered in the very instant the wait ran out: the answer stands
                    return future.result()
                self._record_answer(request, "timeout", "gangline", None)
                return Answer("deny", message=_timeout_message(tool_name, timeout))
        finally:
            self._pending.pop(request.id, None)

    def pending(self) -> list[PermissionRequest]:
        return sorted((request for request, _ in self._pending.values()), key=lambda r: r.created_at)

    async def wait_requested(self, timeout_s: float, count: int = 1) -> list[PermissionRequest]:
        """The pending requests, once there are at least ``count``; TimeoutError after ``timeout_s``."""
        async with asyncio.timeout(timeout_s), self._asked:
            await self._asked.wait_for(lambda: len(self._pending) >= count)
            return self.pending()

    def answer(
        self,
        request_id: str,
        decision: Decision,
        actor: str,
        message: str | None = None,
        updated_input: Mapping[str, Any] | None = None,
    ) -> Answered:
        """A person's answer. ``updated_input`` keys replace the tool's input keys (allow only)."""
        entry = self._pending.get(request_id)
        if entry is None or entry[1].done():
            raise NotFoundError("pending permission request", request_id)
        request, future = entry
        rule = None
        if decision is Decision.DENY:
            answer = Answer("deny", message=message or f"{actor} denied the use of {request.tool_name}")
        else:
            answer = Answer("allow", {**request.input, **(updated_input or {})})
            if decision is Decision.ALWAYS_ALLOW:
                rule = rule_for(request.tool_name, request.input)
                self.store.add_permission_rule(rule.tool, rule.pattern, "allow", actor)
        future.set_result(answer)
        self._record_answer(request, decision.value, actor, rule)
        return Answered(request, decision, answer, rule)

    def cancel_run(self, run_id: str) -> None:
        """The run ended: its questions are moot; their waits end with a denial."""
        for request, future in list(self._pending.values()):
            if request.run_id == run_id and not future.done():
                future.set_result(Answer("deny", message="the run ended before anyone answered"))
                self._record_answer(request, "run_ended", "gangline", None)

    def _record_answer(self, request: PermissionRequest, decision: str, actor: str, rule: Rule | None) -> None:
        data = {"request_id": request.id, "tool": request.tool_name, "decision": decision}
        if rule is not None:
            data["rule"] = str(rule)
        self.store.record_event(
            "permission_answered", actor, item_id=request.item_id, run_id=request.run_id, reason=decision, data=data
        )


def _shown(tool_input: Mapping[str, Any]) -> Any:
    text = json.dumps(tool_input, sort_keys=True, default=str)
    return dict(tool_input) if len(text) <= _INPUT_CHARS else {"truncated": text[:_INPUT_CHARS]}
