"""The chat agent's side of a conversation, in words: what it is told, what it is asked, what the room is told.

Pure: ``chat.agent`` runs the session; this says what the agent's standing instructions are,
how one message becomes its prompt, and what the person reads when the run ends, whether it
answered, ran out of turns or budget, hit a rate limit, or never started.
"""

from __future__ import annotations

from datetime import datetime, tzinfo

from gangline.core.events import RunOutcome
from gangline.core.policy import RunEnding
from gangline.core.profiles import AgentProfile
from gangline.core.text import plain

ANSWER_CHARS = 3500  # of an answer sent to the room: fits every platform's message (WhatsApp's 4096 is the least)
# What Claude Code says when the session to resume is gone (its state was removed, or another machine).
SESSION_GONE = "No conversation found with session ID"

INSTRUCTIONS = """\
You are gangline's chat agent. People write to you from a chat room about the software project
gangline is building: its work items, the agents working on them, the pipeline, what it costs.
Look things up with the gangline tools (list_items, show_item, pipeline_status, costs,
list_permissions) rather than guessing, and say what you found. Change something (add, edit or
delete an item, start, stop, approve or reject one) only when a person asks for it; gangline asks
a person before such a change goes through. Your answer is read on a phone: keep it short and
plain, no tables, no Markdown headings."""


def launched(profile: AgentProfile) -> AgentProfile:
    """The chat profile with gangline's instructions ahead of the project's own ``system_prompt``."""
    own = profile.system_prompt
    return profile.model_copy(update={"system_prompt": INSTRUCTIONS + (f"\n\n{own}" if own else "")})


def prompt(user: str, text: str) -> str:
    """One message as the agent's next prompt: who said it (a room has several people), then what."""
    return f"{user} says:\n{text}"


def session_gone(ending: RunEnding) -> bool:
    """The CLI could not resume the room's session: a new one should take the message."""
    return ending.outcome is not RunOutcome.SUCCEEDED and SESSION_GONE in ending.reason


def answer(ending: RunEnding, said: str | None, profile: AgentProfile, zone: tzinfo) -> str:
    """What the room reads once the agent's run for one message has ended."""
    if ending.outcome is RunOutcome.SUCCEEDED and said and said.strip():
        return clip(plain(said.strip(), multiline=True))
    if ending.budget_note is not None or ending.result_subtype == "error_max_budget_usd":
        return (
            f"I stopped before answering: this answer would cost more than {_money(profile.max_budget_usd)} "
            "(max_budget_usd of the chat agent). Ask something narrower, or say reset to start over."
        )
    if ending.result_subtype == "error_max_turns":
        return (
            f"I stopped before answering: I used my {profile.max_turns} turns (max_turns of the chat agent). "
            "Ask something narrower, or say reset to start over."
        )
    if ending.outcome is RunOutcome.RATE_LIMITED:
        until = datetime.fromtimestamp(ending.resets_at, zone).strftime("%H:%M") if ending.resets_at else None
        return f"The model is rate-limited{f' until {until}' if until else ''}: ask me again then."
    if ending.outcome is RunOutcome.STOPPED:
        return f"I stopped before answering: {plain(ending.reason, limit=300)}."
    if ending.outcome is RunOutcome.SUCCEEDED:
        return "I have no answer to that (I said nothing). Ask again, or say reset to start over."
    return f"I could not answer ({ending.outcome.value}): {plain(ending.reason, limit=500)}"


def not_started(why: str) -> str:
    """The room's answer when the chat agent could not even start (a missing CLI, a sandbox that cannot be made)."""
    return f"I could not start the chat agent: {plain(why, limit=500)}"


def clip(text: str) -> str:
    """An answer cut to ``ANSWER_CHARS``, saying so."""
    if len(text) <= ANSWER_CHARS:
        return text
    return text[: ANSWER_CHARS - 40].rstrip() + "\n… (cut short: ask for the rest)"


def _money(usd: float | None) -> str:
    return f"${usd:.2f}" if usd is not None else "its budget"
