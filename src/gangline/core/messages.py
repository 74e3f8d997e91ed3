"""A person's messages to an item's coder: what may be said, how it is kept, and the prompt it becomes.

A message (with comments on lines of the diff, or without) waits on its item until the coder's
next run takes it: a live run is stopped and its session resumed with it, an item waiting in QA
or held goes back to coding for it, and one in the backlog gets it with its first prompt.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, Field, ValidationInfo, field_validator

from gangline.core.errors import NotListening
from gangline.core.items import Item
from gangline.core.stages import Stage

MESSAGE_STOP = "a person sent a message"  # a live run stopped for one: resumed at once, no retry spent
MESSAGE_INTRO = "A person has a message for you about this item. Take it into account, then carry on and commit."
MAX_TEXT = 20_000
MAX_COMMENTS = 200


class LineComment(BaseModel):
    """A comment on one line of the item's diff: the file as the diff names it, and the line in the new file."""

    path: str = Field(min_length=1, max_length=1000)
    line: int = Field(ge=1)
    text: str = Field(min_length=1, max_length=MAX_TEXT)


class MessageIn(BaseModel):
    """What a person says to the item's coder: text, comments on lines, or both."""

    comments: list[LineComment] = Field(default=[], max_length=MAX_COMMENTS)
    text: str = Field(default="", max_length=MAX_TEXT, validate_default=True)

    @field_validator("text")
    @classmethod
    def _said_something(cls, text: str, info: ValidationInfo) -> str:
        if not text.strip() and not info.data.get("comments"):
            raise ValueError("expected something to say: text, or a comment on a line of the diff")
        return text


class MessageOut(BaseModel):
    id: int
    item_id: int
    actor: str
    text: str
    comments: list[LineComment]
    created_at: float
    run_id: str | None = Field(description="The coder run that took it; none while it waits.")


@dataclass(frozen=True)
class Message:
    id: int
    item_id: int
    actor: str
    text: str
    comments: tuple[LineComment, ...]
    created_at: float
    run_id: str | None  # the run that took it; None while it waits

    def out(self) -> MessageOut:
        return MessageOut(id=self.id, item_id=self.item_id, actor=self.actor, text=self.text,
                          comments=list(self.comments), created_at=self.created_at, run_id=self.run_id)  # fmt: skip


def check_listening(item: Item) -> None:
    """Refuse a message that no coder of ``item`` could take (NotListening, saying why and what to do instead)."""
    if item.stage in (Stage.DONE, Stage.ARCHIVED):
        raise NotListening(item.id, f"is {item.stage.value}: its work is merged; add a new item for more")
    if item.stage is Stage.MERGE:
        raise NotListening(item.id, "is being merged; say it once the merge is done (as a new item) or has failed")


def messages_prompt(messages: list[Message]) -> str:
    """The waiting messages as the coder's next prompt: who said what, and each comment with its file and line."""
    parts = []
    for message in messages:
        said = [f"{message.actor} says:"]
        if message.text.strip():
            said.append(message.text.strip())
        if message.comments:
            said.append("Comments on your diff (file:line in the new version):")
            said += [f"- {c.path}:{c.line}: {c.text.strip()}" for c in message.comments]
        parts.append("\n".join(said))
    return f"{MESSAGE_INTRO}\n\n" + "\n\n".join(parts)
