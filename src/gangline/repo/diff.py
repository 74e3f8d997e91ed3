"""What an item changed: its feature branch against where it left the base branch, or its merged commit."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gangline.core.changes import CommitOut, DiffOut, FileOut
from gangline.core.items import Item
from gangline.repo.git import git
from gangline.repo.worktrees import branch_name

MAX_DIFF_BYTES = 512 * 1024
MAX_COMMITS = 1000
# Plain text whatever the person's git config says: no colour, no external diff tool.
_DIFF_FLAGS = ("--no-color", "--no-ext-diff")


async def item_diff(repo: Path, base: str, item: Item) -> DiffOut:
    """Before the merge: the feature branch against its merge base with the base branch (empty while
    the branch does not exist). After it: the merged commit against its parent."""
    branch = branch_name(item.id, item.slug)
    out = DiffOut(
        base=base, branch=branch, merged=item.merged_commit is not None, commits=[], files=[], diff="", truncated=False
    )
    if item.merged_commit is not None:
        commit = await _commit(repo, item.merged_commit)
        if commit is None:  # gone from the repository (history rewritten): nothing left to show
            return out
        return await _fill(out, repo, (f"{commit}^", commit), f"{commit}^..{commit}")
    if await _commit(repo, f"refs/heads/{branch}") is None:
        return out  # never started
    base_ref, branch_ref = f"refs/heads/{base}", f"refs/heads/{branch}"
    return await _fill(out, repo, (f"{base_ref}...{branch_ref}",), f"{base_ref}..{branch_ref}")


async def _fill(out: DiffOut, repo: Path, span: tuple[str, ...], commits: str) -> DiffOut:
    numstat, diff, log = await asyncio.gather(
        git(repo, "diff", *_DIFF_FLAGS, "--numstat", "-z", *span, "--"),
        git(repo, "diff", *_DIFF_FLAGS, *span, "--"),
        git(repo, "log", "-z", f"--max-count={MAX_COMMITS}", "--format=%H%x1f%s", commits, "--"),
    )
    text, truncated = cut(diff.stdout, MAX_DIFF_BYTES)
    return out.model_copy(
        update={
            "files": parse_numstat(numstat.stdout),
            "commits": parse_log(log.stdout),
            "diff": text,
            "truncated": truncated,
        }
    )


async def _commit(repo: Path, ref: str) -> str | None:
    result = await git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
    return result.stdout.strip() if result.returncode == 0 else None


def parse_numstat(text: str) -> list[FileOut]:
    """Files of ``git diff --numstat -z``: ``added<TAB>deleted<TAB>path<NUL>``, where a rename leaves
    the path empty and follows with ``old<NUL>new<NUL>``; a binary file counts ``-`` lines."""
    files = []
    fields = iter(text.split("\0"))
    for field in fields:
        if not field:
            continue
        added, deleted, path = field.split("\t", 2)
        if not path:
            next(fields, None)  # the old path
            path = next(fields, "")
        binary = added == "-"
        counts = (0, 0) if binary else (int(added), int(deleted))
        files.append(FileOut(path=path, additions=counts[0], deletions=counts[1], binary=binary))
    return files


def parse_log(text: str) -> list[CommitOut]:
    """Commits of ``git log -z --format=%H%x1f%s``, newest first."""
    commits = []
    for entry in text.split("\0"):
        sha, sep, subject = entry.strip("\n").partition("\x1f")
        if sep:
            commits.append(CommitOut(sha=sha, subject=subject))
    return commits


def cut(text: str, max_bytes: int) -> tuple[str, bool]:
    """``text`` within ``max_bytes`` of UTF-8, ending at a whole line where one fits, and whether it was cut."""
    data = text.encode()
    if len(data) <= max_bytes:
        return text, False
    kept = data[:max_bytes].decode(errors="ignore")
    line_end = kept.rfind("\n")
    return (kept[: line_end + 1] if line_end >= 0 else kept), True
