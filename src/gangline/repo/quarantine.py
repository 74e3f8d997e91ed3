"""A sandboxed run's git: new objects in a quarantine, its branch's refs in a directory of its own, taken in after.

Inside the sandbox the repository's git directory is read-only but for the worktree's own
metadata. Git writes the run's new objects to ``GIT_OBJECT_DIRECTORY`` (the quarantine, as
``git receive-pack`` does for a push) and reads the repository's through
``GIT_ALTERNATE_OBJECT_DIRECTORIES``; ``refs/heads/gangline/`` and its reflogs are a
directory of the run's that holds only the item's branch. So an agent can commit on its own
branch and nothing else: not another item's branch, not the base, not an existing object.

When the run ends, gangline takes the work in (``harvest``): every quarantined object is
packed and indexed again by ``git index-pack``, which names each object by its real hash (a
file planted under another object's name cannot poison the store); the new tip must be
complete in the repository; then the branch moves by compare-and-set from the tip it had when
the run started.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import shutil
import subprocess
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gangline.agents.processes import kill_and_reap
from gangline.core.errors import GitError
from gangline.repo.git import git, git_env

_SHA = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")
BRANCH_DIR = "gangline"
ROOM_FILE = "room.json"  # item branches are refs/heads/gangline/<id>-<slug>


@dataclass(frozen=True)
class GitRoom:
    """The git side of one sandboxed run in a worktree of the repository whose git directory is ``common``."""

    common: Path  # the repository's git directory
    private: Path  # the worktree's own metadata (HEAD, index), <common>/worktrees/<name>
    quarantine: Path  # the run's directory: objects/, refs/, logs/
    branch: str | None  # the item's branch name under refs/heads/gangline/, or None (a detached workspace)
    start_tip: str | None  # the branch's tip when the run started

    @property
    def objects(self) -> Path:
        return self.quarantine / "objects"

    @property
    def refs(self) -> Path:
        return self.quarantine / "refs"

    @property
    def logs(self) -> Path:
        return self.quarantine / "logs"

    def moved(self) -> tuple[tuple[Path, Path], ...]:
        """The run's ref directories, shown where the repository keeps the item branches' refs and reflogs."""
        return (
            (self.refs, self.common / "refs" / "heads" / BRANCH_DIR),
            (self.logs, self.common / "logs" / "refs" / "heads" / BRANCH_DIR),
        )

    def env(self) -> dict[str, str]:
        return {
            "GIT_OBJECT_DIRECTORY": str(self.objects),
            "GIT_ALTERNATE_OBJECT_DIRECTORIES": str(self.common / "objects"),
        }


@dataclass(frozen=True)
class Harvest:
    """What a run's git work came to: the branch's new tip if it moved, or why it was not taken."""

    objects: int
    new_tip: str | None = None
    refused: str | None = None


async def prepare(workdir: Path, quarantine: Path, branch: str | None) -> GitRoom:
    """Make the run's quarantine for a worktree, with the item branch's current tip in its own refs."""
    common, private = await _git_dirs(workdir)
    if quarantine.exists():
        shutil.rmtree(quarantine)
    for path in (quarantine / "objects" / "pack", quarantine / "refs", quarantine / "logs"):
        path.mkdir(parents=True)
    tip = None
    if branch is not None:
        name = f"refs/heads/{BRANCH_DIR}/{branch}"
        tip = _read_ref(common, name)
        if tip is None:  # not where git usually keeps it: ask git
            tip = (await git(workdir, "rev-parse", "--verify", "--quiet", name, check=False)).stdout.strip() or None
        if tip is not None:
            (quarantine / "refs" / branch).write_text(tip + "\n")
    room = GitRoom(common, private, quarantine, branch, tip)
    # What harvest needs, kept beside the objects: a server killed mid-run takes them in when it restarts.
    plan = {"common": str(common), "private": str(private), "branch": branch, "start_tip": tip}
    (quarantine / ROOM_FILE).write_text(json.dumps(plan))
    for _source, shown in room.moved():
        shown.mkdir(parents=True, exist_ok=True)  # the mount point, on a file system the sandbox shows read-only
    return room


async def _git_dirs(workdir: Path) -> tuple[Path, Path]:
    """(the repository's git directory, the worktree's own), read from the files git keeps; git asked otherwise."""
    try:
        pointer = (workdir / ".git").read_text()
        private = Path(pointer.removeprefix("gitdir: ").strip())
        common = (private / (private / "commondir").read_text().strip()).resolve()
        if pointer.startswith("gitdir: ") and private.is_absolute() and (common / "objects").is_dir():
            return common, private
    except OSError:
        pass
    ask = ("rev-parse", "--path-format=absolute")
    common = Path((await git(workdir, *ask, "--git-common-dir")).stdout.strip())
    return common, Path((await git(workdir, *ask, "--git-dir")).stdout.strip())


def left_behind(quarantine: Path) -> GitRoom | None:
    """The quarantine a run left when its server was killed, as prepare made it; None if there is none."""
    try:
        plan = json.loads((quarantine / ROOM_FILE).read_text())
        return GitRoom(Path(plan["common"]), Path(plan["private"]), quarantine, plan["branch"], plan["start_tip"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


async def harvest(room: GitRoom) -> Harvest:
    """Take the run's objects and its branch's new tip into the repository; the quarantine is removed."""
    try:
        try:
            count = await _import_objects(room)
        except GitError as err:
            return Harvest(0, refused=f"the run's objects could not be taken in: {err}")
        if room.branch is None:
            return Harvest(count)
        _back_on_its_branch(room)
        new_tip = _read_tip(room.refs / room.branch)
        if new_tip is None or new_tip == room.start_tip:
            return Harvest(count)
        if not _SHA.fullmatch(new_tip):
            return Harvest(count, refused=f"the run left {new_tip[:80]!r} as its branch's tip, not a commit id")
        complete = await git(room.common, "rev-list", "--quiet", "--objects", new_tip, "--not", *_tips(room),
                             check=False)  # fmt: skip
        if complete.returncode != 0:
            return Harvest(count, refused=f"the run's commit {new_tip[:12]} is incomplete: objects are missing")
        ref = f"refs/heads/{BRANCH_DIR}/{room.branch}"
        message = "gangline: the commits of a sandboxed run"
        moved = await git(room.common, "update-ref", "-m", message, ref, new_tip, room.start_tip or "", check=False)
        if moved.returncode != 0:
            return Harvest(count, refused=f"the branch moved while the run worked: {moved.stderr.strip()}")
        return Harvest(count, new_tip)
    finally:
        # Its plan first: a server killed while the rest goes finds nothing half-removed to take in again.
        (room.quarantine / ROOM_FILE).unlink(missing_ok=True)
        shutil.rmtree(room.quarantine, ignore_errors=True)


def _read_ref(common: Path, name: str) -> str | None:
    """A branch's tip from its loose ref file or ``packed-refs``, without a git process; None if not found so."""
    try:
        loose = (common / name).read_text(encoding="ascii").strip()
        return loose if _SHA.fullmatch(loose) else None
    except FileNotFoundError:
        pass
    except (OSError, UnicodeDecodeError):
        return None
    try:
        for line in (common / "packed-refs").read_text(encoding="utf-8").splitlines():
            sha, _, ref = line.partition(" ")
            if ref == name and _SHA.fullmatch(sha):
                return sha
    except (OSError, UnicodeDecodeError):
        pass
    return None


def _back_on_its_branch(room: GitRoom) -> None:
    """A run that switched its worktree to another branch (one only its sandbox had) is put back on its own."""
    head = room.private / "HEAD"
    wanted = f"ref: refs/heads/{BRANCH_DIR}/{room.branch}\n"
    try:
        if head.read_text() != wanted:
            head.write_text(wanted)
    except OSError:
        pass


def _tips(room: GitRoom) -> list[str]:
    return [room.start_tip] if room.start_tip else ["--all"]


def _read_tip(path: Path) -> str | None:
    try:
        text = path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None  # the run deleted its branch: nothing to take
    return text or None


async def _import_objects(room: GitRoom) -> int:
    """Take every quarantined object into the repository, each under its true name; how many there were.

    Loose objects (what commits write) are checked here, in this process: the file's name must
    be the hash of its inflated content, or the whole harvest is refused. A quarantine holding
    packs (the agent repacked) goes through ``git index-pack``, which names every object itself.
    """
    if not room.objects.is_dir():  # removed by hand, or by a kill in an older server's clean-up: nothing to take
        return 0
    loose = [f for d in room.objects.iterdir() if d.name != "pack" and d.is_dir() for f in d.iterdir()]
    if (room.objects / "pack").is_dir() and any((room.objects / "pack").iterdir()):
        return await _index_all(room)
    for path in loose:
        _take_loose(path, room.common / "objects")
    return len(loose)


def _take_loose(path: Path, objects: Path) -> None:
    """Move one verified loose object into ``objects``; GitError if its name is not its content's hash."""
    name = path.parent.name + path.name
    data = path.read_bytes()
    try:
        content = zlib.decompress(data)
    except zlib.error:
        raise GitError(("harvest",), path, None, f"object {name} is not a zlib stream") from None
    digest = (hashlib.sha1 if len(name) == 40 else hashlib.sha256)(content).hexdigest()
    if digest != name or b"\0" not in content[:32]:
        raise GitError(("harvest",), path, None, f"object {name} holds the content of {digest}")
    target = objects / path.parent.name / path.name
    if target.exists():
        return  # git never rewrites an object: the repository's copy stands
    target.parent.mkdir(exist_ok=True)
    temp = target.with_name(f".{path.name}.{os.getpid()}.tmp")
    temp.write_bytes(data)
    temp.chmod(0o444)
    os.replace(temp, target)


async def _index_all(room: GitRoom) -> int:
    """Pack every quarantined object and index it into the repository; how many there were."""
    # git() drops GIT_OBJECT_DIRECTORY from its environment on purpose; here it is the point.
    env = git_env(None) | {"GIT_OBJECT_DIRECTORY": str(room.objects)}
    started: list[asyncio.subprocess.Process] = []

    async def start(*args: str, **how: Any) -> asyncio.subprocess.Process:
        proc = await asyncio.create_subprocess_exec("git", *args, cwd=room.common, start_new_session=True, **how)
        started.append(proc)
        return proc

    try:
        listing = await start("cat-file", "--batch-all-objects", "--batch-check=%(objectname)", env=env,
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
        listed, listing_err = await listing.communicate()
        if listing.returncode != 0:
            raise GitError(("cat-file",), room.common, listing.returncode, listing_err.decode(errors="replace"))
        ids = listed.split()
        if not ids:
            return 0
        reading, writing = os.pipe()
        try:
            pack = await start("pack-objects", "--quiet", "--stdout", env=env,
                               stdin=subprocess.PIPE, stdout=writing, stderr=subprocess.PIPE)  # fmt: skip
            index = await start("index-pack", "--stdin", env=git_env(None),
                                stdin=reading, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
        finally:
            os.close(reading)
            os.close(writing)
        _, pack_err = await pack.communicate(b"\n".join(ids) + b"\n")
        _, index_err = await index.communicate()
    finally:  # cancelled, or one failed to start: none of them may outlive the call
        for proc in started:
            if proc.returncode is None:
                await kill_and_reap(proc)
    if pack.returncode != 0 or index.returncode != 0:
        said = (pack_err or index_err).decode(errors="replace").strip()
        raise GitError(("index-pack",), room.common, index.returncode or pack.returncode, said)
    return len(ids)
