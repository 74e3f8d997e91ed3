"""REST for a project's first steps (the board's onboarding): what it lacks and what was found, and adding a gate."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter

from gangline.pipeline.onboarding import GateIn, OnboardingOut, ProofOut
from gangline.server.errors import ERRORS
from gangline.server.state import StateDep

router = APIRouter(prefix="/api/onboarding", tags=["onboarding"], responses=ERRORS)


@router.get("", response_model=OnboardingOut, summary="What the project lacks, and what was found to fill it")
async def survey(state: StateDep, when_needed: bool = False) -> OnboardingOut:
    """Whether the project has gates and a coder this machine can start; the gates its stack suggests (those
    project.toml lacks) and the agent CLIs on the server's PATH with their versions (with ``when_needed``, only
    when something is missing: the board asks so on every visit)."""
    return await asyncio.to_thread(state.running().onboarder.survey, state.config, not when_needed)


@router.post("/gates", response_model=ProofOut, summary="Prove a gate by running it once, then add it")
async def add_gate(given: GateIn, state: StateDep) -> ProofOut:
    """Run the gate once in a fresh worktree of HEAD, as the pipeline would; add it to project.toml when it passed
    (or when ``anyway``), in force at once. A name project.toml already has is refused."""
    return await state.add_gate(given)
