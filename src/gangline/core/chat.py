"""What a person says in chat, parsed once for every transport: addressed or not, a command or free text.

Pure: a transport hands over the message's text and the names the bot answers to; ``addressed``
says whether the message is for the bot (and strips the mention however the client rendered
it), ``parse`` turns it into a ``Command`` or ``FreeText`` or refuses it with a ``ConfigError``
naming what was wrong and the command's usage. ``help_text`` is generated from the same table,
so it can never disagree with what is accepted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gangline.core.errors import ConfigError
from gangline.core.orders import ACTIONS, ItemAction


@dataclass(frozen=True)
class Arg:
    name: str
    kind: str  # "id" (an item id), "word", "time" (HH:MM), "rest" (everything after), or "choice"
    optional: bool = False
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class CommandSpec:
    name: str
    args: tuple[Arg, ...]
    help: str
    aliases: tuple[str, ...] = ()
    said: str | None = None  # the usage, where the arguments alone cannot say it

    @property
    def usage(self) -> str:
        if self.said is not None:
            return self.said
        shown = []
        for arg in self.args:
            word = "|".join(arg.choices) if arg.kind == "choice" else arg.name.upper()
            shown.append(f"[{word}]" if arg.optional else word)
        return " ".join([self.name, *shown])


_ID = Arg("n", "id")
_WHY = Arg("reason", "rest", optional=True)  # recorded with the change, as REST's reason is
# Which waiting tool call an answer is for: an item (#3), a request id, or none (the one the
# message replies to, or the only one waiting).
_ASKED = Arg("asked", "word", optional=True)
_REQUEST = re.compile(r"[0-9a-f]{16}")
_ANSWERS = ("allow", "deny", "always")
_ITEM_ACTIONS = (ItemAction.START, ItemAction.STOP, ItemAction.BLOCK, ItemAction.UNBLOCK, ItemAction.APPROVE)

# fmt: off
COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec("status", (), "What the pipeline is doing: items per stage, live runs, what waits."),
    CommandSpec("ls", (), "The items that are not done yet.", aliases=("backlog",)),
    CommandSpec("show", (_ID,), "One item: its stage, hold, criteria and last runs."),
    *(CommandSpec(action.value, (_ID, _WHY), ACTIONS[action].help) for action in _ITEM_ACTIONS),
    CommandSpec("reject", (_ID, Arg("reason", "rest")), ACTIONS[ItemAction.REJECT].help),
    CommandSpec("assign", (_ID, Arg("profile", "word")), "Pin an item to an agent profile."),
    CommandSpec("say", (_ID, Arg("text", "rest")),
                "Tell item N's coder something: a live run takes it at once, in the same session."),
    CommandSpec("cost", (Arg("period", "choice", optional=True, choices=("today", "week")),),
                "What the agents cost, today or this week (default: today)."),
    CommandSpec("logs", (_ID,), "The last lines of an item's live run."),
    CommandSpec("overview", (_ID,), "What a merged item changed and how it got there: files, time, runs, cost."),
    CommandSpec("git", (), "The base branch: its tip, ahead and behind, a dirty checkout."),
    CommandSpec("htop", (Arg("stop", "choice", optional=True, choices=("stop",)),),
                "Each live run's processes, CPU and memory, kept up to date for 5 minutes; htop stop ends it."),
    CommandSpec("timer", (Arg("n", "word"), Arg("at", "word")),
                "Start item N at HH:MM in the project's time zone; timer cancel N drops it.",
                said="timer N HH:MM | timer cancel N"),
    CommandSpec("ambient", (Arg("mode", "choice", choices=("on", "off")),),
                "ambient on: answer every message in this room; off: only when named."),
    CommandSpec("allow", (_ASKED,), "Let an agent's waiting tool call go ahead.", said="allow [N|REQUEST]"),
    CommandSpec("deny", (_ASKED, Arg("reason", "rest", optional=True)),
                "Refuse an agent's waiting tool call; the reason is told to the agent.",
                said="deny [N|REQUEST] [REASON]"),
    CommandSpec("always", (_ASKED,), "Allow it, and every call like it from now on (always allow).",
                said="always [allow] [N|REQUEST]"),
    CommandSpec("reset", (), "Start the chat agent's conversation in this room over."),
    CommandSpec("help", (), "This list."),
)
# fmt: on
_BY_NAME = {name: spec for spec in COMMANDS for name in (spec.name, *spec.aliases)}
_TIME = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")


@dataclass(frozen=True)
class Command:
    """A command as typed, its arguments checked: ids are ints, a time is (hour, minute)."""

    name: str  # the canonical name (an alias is resolved)
    item_id: int | None = None
    word: str | None = None  # a profile, a period, "on"/"off", "stop", "cancel"
    rest: str | None = None  # a reject's or a deny's reason
    request_id: str | None = None  # a permission request an answer names
    at: tuple[int, int] | None = None  # a timer's HH:MM


@dataclass(frozen=True)
class FreeText:
    """Anything that is no command: for the chat agent."""

    text: str


def help_text() -> str:
    """Every command with its usage and what it does, from the table ``parse`` reads."""
    lines = [f"{spec.usage} — {spec.help}" for spec in COMMANDS]
    aliases = [f"{alias} = {spec.name}" for spec in COMMANDS for alias in spec.aliases]
    return "\n".join(lines + ([f"({', '.join(aliases)})"] if aliases else []))


def parse(text: str) -> Command | FreeText:
    """``text`` (already stripped of any mention) as a command, or free text when its first word names none.

    Raises ConfigError (field ``chat``) naming the command, what was wrong and its usage.
    """
    words = text.split()
    if not words:
        return FreeText("")
    spec = _BY_NAME.get(words[0].lower())
    if spec is None:
        return FreeText(text.strip())
    if spec.name == "timer":
        return _timer(words[1:], spec)
    if spec.name in _ANSWERS:
        return _answer(spec, text.strip().split(maxsplit=1)[1:])
    takes_rest = bool(spec.args) and spec.args[-1].kind == "rest"
    return _bind(spec, text.strip().split(maxsplit=len(spec.args))[1:] if takes_rest else words[1:])


def _bind(spec: CommandSpec, given: list[str]) -> Command:
    required = [a for a in spec.args if not a.optional]
    if len(given) < len(required) or (len(given) > len(spec.args)):
        raise _refused(spec, f"expected {len(required)} argument(s), got {len(given)}")
    found: dict[str, object] = {}
    for arg, value in zip(spec.args, given, strict=False):
        if arg.kind == "id":
            found["item_id"] = _item_id(spec, value)
        elif arg.kind == "choice":
            if value.lower() not in arg.choices:
                raise _refused(spec, f"expected {' or '.join(arg.choices)}, got {value!r}")
            found["word"] = value.lower()
        elif arg.kind == "rest":
            found["rest"] = value.strip()
        else:
            found["word"] = value
    return Command(spec.name, **found)  # type: ignore[arg-type]


def _timer(given: list[str], spec: CommandSpec) -> Command:
    if len(given) == 2 and given[0].lower() == "cancel":
        return Command("timer", item_id=_item_id(spec, given[1]), word="cancel")
    if len(given) != 2:
        raise _refused(spec, f"expected an item and a time, or cancel and an item; got {len(given)} argument(s)")
    match = _TIME.fullmatch(given[1])
    if match is None:
        raise _refused(spec, f"expected a time as HH:MM (00:00 to 23:59), got {given[1]!r}")
    return Command("timer", item_id=_item_id(spec, given[0]), at=(int(match[1]), int(match[2])))


def _answer(spec: CommandSpec, given: list[str]) -> Command:
    """allow / deny / always, naming the request by item or id, or by nothing; a deny's reason after it."""
    rest = given[0].split() if given else []
    if spec.name == "always" and rest and rest[0].lower() == "allow":
        rest = rest[1:]
    target: dict[str, object] = {}
    if rest and (rest[0].startswith("#") or rest[0].isdigit()):
        target["item_id"] = _item_id(spec, rest.pop(0))
    elif rest and _REQUEST.fullmatch(rest[0]):
        target["request_id"] = rest.pop(0)
    if rest and spec.name != "deny":
        raise _refused(spec, f"expected an item such as #3 or a request id, got {' '.join(rest)!r}")
    return Command(spec.name, rest=" ".join(rest) or None, **target)  # type: ignore[arg-type]


def _item_id(spec: CommandSpec, value: str) -> int:
    digits = value.removeprefix("#")
    if not digits.isdigit() or int(digits) <= 0:
        raise _refused(spec, f"expected an item id such as 3 or #3, got {value!r}")
    return int(digits)


def _refused(spec: CommandSpec, why: str) -> ConfigError:
    return ConfigError("chat", f"{spec.name}: {why}; usage: {spec.usage}")


# --- who is spoken to ------------------------------------------------------------------------


def addressed(text: str, names: tuple[str, ...], ambient: bool = False) -> str | None:
    """The message without its mention when it is for the bot; None when it is not (and the room is not ambient).

    A mention counts at the start, however the client renders it: ``@gangline``, ``gangline:``,
    ``gangline,``, a Matrix id ``@gangline:example.org``, Slack's ``<@U123>`` and Discord's
    ``<@123>`` / ``<@!123>`` when the transport passes those ids in ``names``.
    """
    stripped = text.strip()
    for name in names:
        pattern = _mention(name)
        found = pattern.match(stripped)
        if found is not None:
            return stripped[found.end() :].strip()
    return stripped if ambient else None


def _mention(name: str) -> re.Pattern[str]:
    quoted = re.escape(name)
    if name.startswith("<@"):  # an id the client renders as markup: <@U123>, <@!123>
        inner = re.escape(name[2:].rstrip(">").lstrip("!"))
        return re.compile(rf"<@!?{inner}>[\s,:]*")
    return re.compile(rf"@?{quoted}(?::[\w.-]+(?::\d+)?)?(?![\w.-])[\s,:]*", re.IGNORECASE)
