"""What the project's runs take on disk, and what the last retention sweep did (``pipeline.retention``): the
records ``gangline status``, ``gangline doctor`` and ``GET /api/status`` show."""

from __future__ import annotations

from pydantic import BaseModel


class SweepOut(BaseModel):
    at: float
    compressed_logs: int  # ended runs' logs gzip-compressed
    deleted_logs: int  # ended runs' logs removed (by age, or to fit the size bound)
    pruned_worktrees: int  # done items' worktrees removed
    cleared_outputs: int  # gate and hook outputs dropped from the store (their outcomes stay)
    freed_bytes: int
    kept: list[str]  # done items' worktrees it could not remove, and why


class DiskOut(BaseModel):
    at: float  # when it was measured
    run_logs_bytes: int
    run_logs: int
    compressed_logs: int  # of them
    worktrees_bytes: int  # the items' worktrees and the merge workspace
    worktrees: int
    gate_output_bytes: int
    total_bytes: int
    limit_bytes: int  # [retention] max_bytes
    last_sweep: SweepOut | None = None

    @property
    def over(self) -> bool:
        return self.total_bytes > self.limit_bytes


def disk_line(disk: DiskOut) -> str:
    """The disk in a line, as ``status`` and ``doctor`` say it."""
    logs = f"run logs {size(disk.run_logs_bytes)} ({disk.run_logs}, {disk.compressed_logs} compressed)"
    trees = f"worktrees {size(disk.worktrees_bytes)} ({disk.worktrees})"
    total = f"{size(disk.total_bytes)} of the {size(disk.limit_bytes)} [retention] allows"
    return f"{logs}, {trees}, gate output {size(disk.gate_output_bytes)}: {total}"


def size(n: float) -> str:
    """Bytes for a person: 512 B, 3.4 MiB, 1.2 GiB."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n:.0f} B"
