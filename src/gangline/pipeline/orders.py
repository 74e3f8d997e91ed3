"""A person's orders, checked once: add, edit and delete items, act on them, stop runs, answer agents.

Every door calls these and only translates the answer to its medium: REST, the people's MCP
tools, the CLI (on the store, or through a server that calls these in its own process) and the
board. So an order is refused the same way wherever it comes from: a pinned agent that is not a
coder profile, a freeze asked for by an edit, an action the stage table forbids. Each order is
carried out by the orchestrator, the one writer, and leaves its event in the log.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from gangline.core.errors import ConfigError, NotFoundError, RunnerError, Unavailable
from gangline.core.items import ItemPatch
from gangline.core.messages import MESSAGE_STOP, MessageIn, MessageOut, check_listening
from gangline.core.orders import ACTIONS, ItemAction, check_legal, reason_for
from gangline.core.profiles import Role
from gangline.core.stages import Hold, Stage, Trigger
from gangline.core.timers import parse_when
from gangline.core.wire import (
    ItemOut,
    NewItem,
    PermissionAnswer,
    PermissionAnswered,
    PermissionRequestOut,
    RunOut,
)
from gangline.pipeline.orchestrator import Orchestrator
from gangline.pipeline.permissions import NOT_SERVED, Permissions
from gangline.pipeline.views import Views
from gangline.project.config import ProjectConfig


class Orders:
    """The orders every door calls; ``permissions`` is None where no server keeps the agents' questions."""

    def __init__(self, orchestrator: Orchestrator, views: Views, permissions: Permissions | None = None) -> None:
        self.orchestrator = orchestrator
        self.views = views
        self.permissions = permissions

    @property
    def config(self) -> ProjectConfig:
        return self.orchestrator.config

    # --- items ---------------------------------------------------------------------------------

    async def say(self, item_id: int, message: MessageIn, actor: str) -> MessageOut:
        """A person's message to the item's coder, taken by its next run: a live coder run is stopped and its
        session resumed with it at once; an item in QA (held for review or not) goes back to coding for it, a
        blocked one is unblocked; one in the backlog has it with its first prompt. Refused once the item is merged
        or being merged."""
        orch = self.orchestrator
        item = orch.store.get_item(item_id)
        check_listening(item)
        said = orch.store.add_message(item_id, actor, message.text, message.comments)
        if item.state.frozen:
            return said.out()  # left alone: the message waits until a person unfreezes it
        if item.state.hold is Hold.BLOCKED:
            item = await orch.act(item_id, Trigger.UNBLOCK, actor, "a person sent a message")
        elif item.state.hold is Hold.REVIEW_HOLD and item.stage is Stage.QA:  # reviewed, and more is wanted
            item = await orch.act(item_id, Trigger.RELEASE, actor, "a person sent a message")
        if item.stage is Stage.QA and item.state.hold is None:
            orch.back_to_coding(item_id, actor, MESSAGE_STOP)
        elif item.stage is Stage.CODING:
            for run in orch.store.runs(item_id, live_only=True):
                orch.stop_run(run.id, MESSAGE_STOP)
        return said.out()

    def add_item(self, new: NewItem, actor: str) -> ItemOut:
        """Add a work item to the backlog, to start no earlier than ``new.start_after``."""
        check_pinned(self.config, new.pinned_agent)
        draft = new.draft()
        at = new.start_after.timestamp() if new.start_after is not None else None
        # Nothing awaits between the two, so the orchestrator cannot start the item before it is scheduled.
        item = self.orchestrator.add_item(draft, actor)
        if at is not None:
            item = self.orchestrator.schedule_start(item.id, at, actor)
        return self.views.board().out(item)

    def edit_item(self, item_id: int, patch: ItemPatch, actor: str) -> ItemOut:
        """Change what a person wrote; the stage only ever changes by an action."""
        if patch.frozen is not None:
            raise ConfigError("frozen", "freezing is an action: freeze or unfreeze the item instead of editing it")
        check_pinned(self.config, patch.pinned_agent)
        item = self.orchestrator.edit_item(item_id, patch, actor)
        return self.views.board().out(item)

    def delete_item(self, item_id: int, actor: str) -> ItemOut:
        """Delete an item; refused while it runs or while another item depends on it."""
        return ItemOut.of(self.orchestrator.delete_item(item_id, actor))

    async def act(
        self, item_id: int, action: ItemAction, reason: str | None, actor: str, by: int | None = None
    ) -> ItemOut:
        """A person's action: the stage table is asked first (before git is), then the orchestrator acts.
        ``by``: the item that supersedes this one (``supersede`` only)."""
        recorded = reason_for(action, reason, actor)
        if action is ItemAction.SUPERSEDE:
            recorded = self._superseded(item_id, by, recorded)
        elif by is not None:
            raise ConfigError("by", f"only supersede names the item that does it instead, not {action.value}")
        current = self.orchestrator.store.get_item(item_id)
        check_legal(item_id, current.state, action, recorded, current.kind)
        item = await self.orchestrator.act(item_id, ACTIONS[action].trigger, actor, recorded)
        return self.views.board().out(item)

    def _superseded(self, item_id: int, by: int | None, reason: str | None) -> str:
        if by is None:
            raise ConfigError("by", "expected the id of the item that does this one's work instead")
        if by == item_id:
            raise ConfigError("by", f"an item cannot supersede itself (got {by})")
        try:
            self.orchestrator.store.get_item(by)
        except NotFoundError:
            raise ConfigError("by", f"item {by} does not exist") from None
        return f"superseded by #{by}" + (f": {reason}" if reason else "")

    def set_timer(self, item_id: int, when: str | None, actor: str) -> ItemOut:
        """Start a backlog item no earlier than ``when`` (``core.timers``: HH:MM, +30m, a date-time, in the
        project's time zone); None cancels its timer. Refused outside the backlog."""
        at = parse_when(when, self.orchestrator.clock(), self.config.zone()) if when is not None else None
        return self.views.board().out(self.orchestrator.schedule_start(item_id, at, actor))

    # --- runs ----------------------------------------------------------------------------------

    async def stop_run(self, run_id: str, reason: str | None, actor: str) -> RunOut:
        """Stop a live run: its item is blocked (so the pipeline does not start it again at once), then
        its agent's process group is stopped. Unblocking the item lets the pipeline take it up again."""
        run = self.orchestrator.store.get_run(run_id)
        if not run.live:
            raise RunnerError(run_id, f"is not live: it ended {run.outcome.value if run.outcome else ''}".strip())
        given = (reason or "").strip()
        why = f"run {run_id} stopped by {actor}" + (f": {given}" if given else "")
        if run.item_id is None:  # a chat agent's: no item to block
            self.orchestrator.stop_run(run_id, why)
            return self.views.run(run_id)
        state = self.orchestrator.store.get_item(run.item_id).state
        if state.hold is None and not state.frozen:
            await self.orchestrator.act(run.item_id, Trigger.BLOCK, actor, why)  # stops the item's runs too
        else:
            self.orchestrator.stop_run(run_id, why)
        return self.views.run(run_id)

    # --- agents' questions ---------------------------------------------------------------------

    def pending_permissions(self) -> list[PermissionRequestOut]:
        """Agents' tool calls waiting for a person's answer, oldest first."""
        return [PermissionRequestOut.of(request) for request in self._permissions().pending()]

    def answer_permission(self, request_id: str, answer: PermissionAnswer, actor: str) -> PermissionAnswered:
        """The waiting tool call goes on with the answer; NotFoundError once it was answered, timed out or ended."""
        done = self._permissions().answer(request_id, answer.decision, actor, answer.message, answer.updated_input)
        return PermissionAnswered(
            request=PermissionRequestOut.of(done.request),
            decision=done.decision,
            rule=str(done.rule) if done.rule else None,
        )

    def _permissions(self) -> Permissions:
        if self.permissions is None:
            raise Unavailable(NOT_SERVED)
        return self.permissions


def check_pinned(config: ProjectConfig, name: str | None) -> None:
    """A pinned agent must be a coder profile of the project: refused when the order comes, not when its job starts."""
    if name is None:
        return
    profile = config.profile(name)
    coders = ", ".join(p.name for p in config.profiles_for(Role.CODER))
    if profile is None:
        raise ConfigError("pinned_agent", f"no agent profile named {name!r} in project.toml; the coders are: {coders}")
    if profile.role is not Role.CODER:
        raise ConfigError("pinned_agent", f"{name!r} is a {profile.role.value} profile; pin a coder profile ({coders})")


# A door that runs beside a serving pipeline rather than answering requests (chat): the server
# enters it once the orchestrator runs, with the way to reach the orders, and leaves it at shutdown.
Door = Callable[[Callable[[], Orders]], AbstractAsyncContextManager[None]]
