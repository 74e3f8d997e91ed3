"""What an item changed, on the wire: its commits, its files with their line counts, and the diff (``repo.diff``)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class CommitOut(BaseModel):
    sha: str
    subject: str


class FileOut(BaseModel):
    path: str  # a renamed file's new path
    additions: int
    deletions: int
    binary: bool


class DiffOut(BaseModel):
    """What an item changed: the merged commit once merged, else its branch since it left the base."""

    base: str
    branch: str
    merged: bool
    commits: list[CommitOut]
    files: list[FileOut]
    diff: str = Field(description="Unified diff text, cut to 512 KiB at a line boundary when `truncated`.")
    truncated: bool
