"""REST for agents' permission requests: list the pending ones, answer one (allow, deny, always allow)."""

from __future__ import annotations

from typing import Annotated, Any, cast

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from pydantic import BaseModel, Field, model_validator

from gangline.core.rules import Decision, PermissionRequest
from gangline.pipeline.permissions import Permissions
from gangline.server.app import ERRORS, ActorDep

router = APIRouter(prefix="/api/permissions", tags=["permissions"], responses=ERRORS)

RequestIdPath = Annotated[str, Path(min_length=1, max_length=64, description="The request's id.")]


def get_permissions(request: Request) -> Permissions:
    permissions = getattr(request.app.state, "permissions", None)
    if permissions is None:
        raise HTTPException(503, "permission requests are not served (the app was started without its lifespan)")
    return cast(Permissions, permissions)


PermissionsDep = Annotated[Permissions, Depends(get_permissions)]


class PermissionRequestOut(BaseModel):
    """An agent's tool call waiting for a person; it is denied at ``expires_at`` if nobody answers."""

    id: str
    run_id: str
    item_id: int
    tool_name: str
    input: dict[str, Any]
    tool_use_id: str | None
    created_at: float  # seconds since the epoch
    expires_at: float | None

    @classmethod
    def of(cls, request: PermissionRequest) -> PermissionRequestOut:
        return cls.model_validate(request, from_attributes=True)


class PermissionAnswer(BaseModel):
    decision: Decision = Field(description="allow, deny, or always_allow (allow, and save a rule for such calls).")
    message: str | None = Field(
        default=None, max_length=2000, description="For deny: why, in words the agent can act on."
    )
    updated_input: dict[str, Any] | None = Field(
        default=None, description="For allow: keys that replace the tool's input keys (say, a changed command)."
    )

    @model_validator(mode="after")
    def _input_only_when_allowing(self) -> PermissionAnswer:
        if self.updated_input is not None and self.decision is Decision.DENY:
            raise ValueError("updated_input goes with allow or always_allow, not deny")
        return self


class PermissionAnswered(BaseModel):
    request: PermissionRequestOut
    decision: Decision
    rule: str | None = Field(description='The rule "always allow" saved, like Bash(git status:*).')


@router.get("", response_model=list[PermissionRequestOut], summary="List pending permission requests")
async def list_permissions(permissions: PermissionsDep) -> list[PermissionRequestOut]:
    return [PermissionRequestOut.of(request) for request in permissions.pending()]


@router.post("/{request_id}", response_model=PermissionAnswered, summary="Answer a pending permission request")
async def answer_permission(
    request_id: RequestIdPath, answer: PermissionAnswer, permissions: PermissionsDep, actor: ActorDep
) -> PermissionAnswered:
    """The waiting tool call goes on with the answer. 404 when the request is unknown, already
    answered, timed out, or its run ended."""
    done = permissions.answer(request_id, answer.decision, actor, answer.message, answer.updated_input)
    return PermissionAnswered(
        request=PermissionRequestOut.of(done.request),
        decision=done.decision,
        rule=str(done.rule) if done.rule else None,
    )
