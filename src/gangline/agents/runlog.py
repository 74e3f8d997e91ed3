"""The durable per-run event log: append-only JSONL, one ``Record`` per line.

Durability (see SPEC.md "Run log"): every batch of records is written with one write(2)
before it is published, so a crash of the server loses nothing the kernel accepted;
``sync()`` (fsync) runs when the process is recorded, when a session starts or ends, and when
the log is closed, so a power loss can cost at most the deltas since the last of those.

An ended run's log may later be gzip-compressed beside itself (``<run>.jsonl.gz``, by
``pipeline.retention``), and at last removed; the readers here read either form.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, cast

import msgspec

from gangline.core.errors import RunLogError
from gangline.core.events import NO_RAW, Event, Record

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Record)


class RunLog:
    """Appends records with ids that increase by one, continuing an existing file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        except OSError as err:
            raise RunLogError(path, f"cannot open for writing: {err.strerror}") from None
        try:
            self.last_id = self._recover()
            self.size = os.fstat(self._fd).st_size  # bytes in the file, kept up to date by append()
        except Exception:
            os.close(self._fd)
            raise

    def _recover(self) -> int:
        """Drop a torn last line left by a crash mid-write, and return the last id."""
        size = os.fstat(self._fd).st_size
        if size == 0:
            return 0
        tail_len = min(size, 1 << 20)
        tail = os.pread(self._fd, tail_len, size - tail_len)
        end = tail.rfind(b"\n") + 1
        if end < len(tail):
            os.truncate(self.path, size - len(tail) + end)
        lines = tail[:end].rstrip(b"\n").rsplit(b"\n", 1)
        if not lines[-1]:
            return 0
        try:
            return _decoder.decode(lines[-1]).id
        except msgspec.DecodeError as err:
            raise RunLogError(self.path, f"last line is not a record: {err}") from None

    def append(self, items: Sequence[tuple[Event, msgspec.Raw | None]], ts: float) -> list[Record]:
        """Give each event the next id, write them all at once, and return the records."""
        first = self.last_id + 1
        records = [Record(first + i, ts, event, raw or NO_RAW) for i, (event, raw) in enumerate(items)]
        if not records:
            return records
        data = _encoder.encode_lines(records)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError as err:
            raise RunLogError(self.path, f"write failed: {err.strerror}") from None
        self.last_id = records[-1].id
        self.size += len(data)
        return records

    def sync(self) -> None:
        try:
            os.fsync(self._fd)
        except OSError as err:
            raise RunLogError(self.path, f"fsync failed: {err.strerror}") from None

    def close(self) -> None:
        if self._fd >= 0:
            try:
                self.sync()
            finally:
                os.close(self._fd)
                self._fd = -1

    def __enter__(self) -> RunLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


GONE = "it is gone: an ended run's log is removed after [retention] delete_after_s, or when the disk bound needs it"


def stored(path: Path) -> Path | None:
    """The file holding the log at ``path``: itself, or its compressed form; None when neither is there."""
    for found in (path, path.with_name(path.name + ".gz")):
        if found.exists():
            return found
    return None


def _open(path: Path) -> IO[bytes]:
    """The log at ``path`` for reading, compressed or not; RunLogError saying why it cannot be."""
    found = stored(path)
    if found is None:
        raise RunLogError(path, f"cannot read: {GONE}")
    try:
        if found.suffix == ".gz":
            return cast(IO[bytes], gzip.open(found, "rb"))
        return open(found, "rb")
    except OSError as err:
        raise RunLogError(path, f"cannot read: {err.strerror}") from None


def replay(path: Path, after_id: int = 0) -> Iterator[Record]:
    """Records with an id greater than ``after_id``, in order; a torn last line is skipped."""
    f = _open(path)
    with f:
        for n, line in enumerate(f, 1):
            if not line.endswith(b"\n"):
                return  # a write in progress, or torn by a crash: not a record yet
            try:
                record = _decoder.decode(line)
            except msgspec.DecodeError as err:
                raise RunLogError(path, f"line {n} is not a record: {err}") from None
            if record.id > after_id:
                yield record


def replay_if_any(path: Path, after_id: int = 0) -> Iterator[Record]:
    """``replay``, or nothing yet when the runner has not created the log (a live run's viewer asks early)."""
    if stored(path) is not None:
        yield from replay(path, after_id)


def replay_tail(path: Path, max_bytes: int = 1 << 20) -> Iterator[Record]:
    """The records in the last ``max_bytes`` of the log, in order: a long run's end without reading it all."""
    f = _open(path)
    with f:
        size = f.seek(0, 2)
        f.seek(max(0, size - max_bytes))
        if size > max_bytes:
            f.readline()  # the rest of a record cut by the seek
        for line in f:
            if not line.endswith(b"\n"):
                return
            try:
                yield _decoder.decode(line)
            except msgspec.DecodeError as err:
                raise RunLogError(path, f"a line near the end is not a record: {err}") from None
