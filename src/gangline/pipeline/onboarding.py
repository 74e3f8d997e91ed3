"""A project's first steps: the gates its stack suggests, each proven by running it once, and the agent CLIs found.

``gangline init`` walks a person through these before writing ``project.toml``; the board shows
the same when a project has no gates or no coder it can start. A gate is proven as the pipeline
runs it: in a fresh worktree of ``HEAD`` (the repository itself when it has no commit yet), with
``/bin/sh -c``, in the gates' sandbox when runs are confined, bounded by its timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from pydantic import BaseModel

from gangline.agents.installed import installed_clis
from gangline.agents.registry import ADAPTERS
from gangline.core.hooks import HookPoint
from gangline.core.profiles import CliKind, Role
from gangline.pipeline.rooms import Rooms
from gangline.project.config import GateSpec, ProjectConfig
from gangline.project.paths import ProjectPaths
from gangline.project.scaffold import append_gate, free_gate_name
from gangline.project.stacks import Proposal, Survey, survey
from gangline.project.template import GateChoice
from gangline.repo.gates import GateLike, GateResult
from gangline.repo.git import git

PROOF_TIMEOUT_S = 600.0  # what a proposed gate gets, as a [[gate]] does by default
OUTPUT_TAIL = 4096  # characters of a proof's output a person is shown


class ProposalOut(BaseModel):
    name: str
    command: str
    why: str
    point: str | None = None  # a hook's point (after_create): written in [hooks] of project.toml, not added as a gate


class CliOut(BaseModel):
    kind: str
    path: str
    version: str


class OnboardingOut(BaseModel):
    """What the board's onboarding shows: what is missing, and what was found to fill it."""

    needed: bool  # no gate, or no coder this machine can start
    gates: int
    coders: list[str]
    stacks: list[str]
    proposals: list[ProposalOut]  # the gates the stack suggests that project.toml does not have yet
    clis: list[CliOut]


class GateIn(GateSpec):
    """A gate to prove and add; ``anyway``: add it even when its proof failed."""

    anyway: bool = False


class ProofOut(BaseModel):
    name: str
    command: str
    passed: bool
    outcome: str  # "passed", "failed with exit code 1", ...
    duration_s: float
    output: str  # its end
    added: bool
    note: str  # what was done, in words


async def prove(
    paths: ProjectPaths,
    gates: Sequence[GateLike],
    rooms: Rooms,
    env: Mapping[str, str],
    prepare: Sequence[GateLike] = (),
) -> AsyncGenerator[GateResult]:
    """Run each of ``gates`` once, as the pipeline would, yielding each result as it comes (every one runs).
    ``prepare``: the project's after_create hooks, run first, as in every new worktree (their failure shows in the
    gates' own)."""
    async with _proving_tree(paths, env) as tree:
        if prepare:
            await rooms.run_gates(prepare, f"proof-{secrets.token_hex(4)}", tree, env, noun="hook")
        for gate in gates:
            report = await rooms.run_gates([gate], f"proof-{secrets.token_hex(4)}", tree, env)
            yield report.results[0]


class Onboarder:
    """A project's first steps as the doors offer them: what is missing and found, and a gate proven and added."""

    def __init__(self, paths: ProjectPaths, rooms: Rooms, env: Mapping[str, str]) -> None:
        self.paths = paths
        self.rooms = rooms
        self.env = env

    def survey(self, config: ProjectConfig, whole: bool = True) -> OnboardingOut:
        """What ``config`` lacks and what this repository and machine offer; not ``whole``: the survey only when
        something is missing (blocking: each CLI found is asked its version)."""
        path = self.env.get("PATH")
        coders = [
            profile.name
            for profile in config.profiles_for(Role.CODER)
            if profile.cli is CliKind.FAKE
            or shutil.which(profile.command or ADAPTERS[profile.cli].binary, path=path) is not None
        ]
        needed = not config.gates or not coders
        found = survey(self.paths.root) if whole or needed else Survey((), ())
        clis = installed_clis(self.env) if whole or needed else []
        have = {gate.name for gate in config.gates} | {gate.command for gate in config.gates}
        have |= {point.value for point in HookPoint if getattr(config.hooks, point.value)}
        return OnboardingOut(
            needed=needed,
            gates=len(config.gates),
            coders=coders,
            stacks=list(found.stacks),
            proposals=[ProposalOut(name=p.name, command=p.command, why=p.why, point=p.point)
                       for p in found.proposals if p.name not in have and p.command not in have],
            clis=[CliOut(kind=cli.kind.value, path=cli.path, version=cli.version) for cli in clis],
        )  # fmt: skip

    async def add_gate(self, given: GateIn, config: ProjectConfig) -> ProofOut:
        """Prove ``given`` once (after ``config``'s after_create hooks, as in any new worktree), then add it to
        ``project.toml`` if it passed (or the person said ``anyway``)."""
        prepare = config.hook_steps(HookPoint.AFTER_CREATE)
        gate = GateSpec(name=given.name, command=given.command, timeout_s=given.timeout_s)
        free_gate_name(self.paths, gate.name, self.env)  # before a proof that may take minutes
        async with contextlib.aclosing(prove(self.paths, [gate], self.rooms, self.env, prepare)) as proofs:
            result = await anext(proofs)
        added = result.passed or given.anyway
        if added:
            note = "passed when it was added" if result.passed else f"{result.outcome} when it was added, and kept"
            choice = GateChoice(gate.name, gate.command, note, True, gate.timeout_s)
            await asyncio.to_thread(append_gate, self.paths, choice, self.env)
        said = (
            f"added to {self.paths.config_file.name}"
            if added
            else "not added (add it anyway if the project is expected to fail it for now)"
        )
        return ProofOut(
            name=gate.name, command=gate.command, passed=result.passed, outcome=result.outcome,
            duration_s=round(result.duration_s, 3), output=result.output[-OUTPUT_TAIL:], added=added, note=said,
        )  # fmt: skip


def as_gate(proposal: Proposal) -> GateSpec:
    return GateSpec(name=proposal.name, command=proposal.command, timeout_s=PROOF_TIMEOUT_S)


@asynccontextmanager
async def _proving_tree(paths: ProjectPaths, env: Mapping[str, str]) -> AsyncIterator[Path]:
    """A detached worktree of ``HEAD`` under ``.gangline/worktrees``, removed after; the repository without a commit."""
    head = await git(paths.root, "rev-parse", "--verify", "-q", "HEAD^{commit}", check=False, env=env)
    if head.returncode != 0:
        yield paths.root
        return
    tree = paths.worktrees_dir / f"proof-{secrets.token_hex(4)}"
    tree.parent.mkdir(parents=True, exist_ok=True)
    await git(paths.root, "worktree", "add", "--quiet", "--detach", str(tree), "HEAD", env=env)
    try:
        yield tree
    finally:
        # Shielded: a cancelled proof still leaves no worktree behind.
        await asyncio.shield(_remove_tree(paths.root, tree, env))


async def _remove_tree(root: Path, tree: Path, env: Mapping[str, str]) -> None:
    await git(root, "worktree", "remove", "--force", str(tree), check=False, env=env)
    shutil.rmtree(tree, ignore_errors=True)
    await git(root, "worktree", "prune", check=False, env=env)
