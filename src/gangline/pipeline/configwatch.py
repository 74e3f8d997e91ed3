"""Live configuration: ``project.toml`` edited while a server runs takes effect without a restart.

The file is looked at every ``POLL_S`` (its size, time and inode; its text when those change).
An edit that loads is applied at once: the next plan, run, gate, QA and merge use it, while a run
already started keeps the profile it started with. An edit that does not load is refused: the
last good configuration stays in force, and the error (file, key, reason) is kept for ``status``
and the board until a good edit replaces it. A few settings are read once, at start
(``RESTART_KEYS``): an edit of one is applied everywhere else and reported as waiting for a
restart. Each outcome is an event (``config_applied``, ``config_refused``) in the server's feed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from gangline.core.errors import ConfigError
from gangline.core.types import SERVER, Clock
from gangline.pipeline.rooms import Rooms
from gangline.pipeline.runs import AgentRuns
from gangline.project.config import ProjectConfig, load_project_text
from gangline.project.paths import ProjectPaths, shown
from gangline.store import Store

log = logging.getLogger(__name__)

POLL_S = 1.0
# Read once, at start: the branch merges advance (its guard hooks, its worktrees), the database, the chat accounts.
RESTART_KEYS = {"base_branch": "base_branch", "database_url": "database_url", "chats": "chat"}


@dataclass(frozen=True)
class ConfigState:
    """What ``status`` says of the configuration: when the one in force was read, and any edit refused since."""

    loaded_at: float
    error: str | None = None  # the refused edit's problem: file, key and reason
    refused_at: float | None = None
    restart_needed: tuple[str, ...] = ()  # keys edited that take effect only at the next start


class ConfigWatch:
    """Watches ``project.toml`` and hands each good edit to ``apply``; keeps the state ``status`` shows."""

    def __init__(
        self,
        paths: ProjectPaths,
        started: ProjectConfig,
        env: Mapping[str, str],
        store: Store,
        apply: Callable[[ProjectConfig], None],
        clock: Clock,
    ) -> None:
        self.paths = paths
        self.started = started
        self.env = env
        self.store = store
        self.apply = apply
        self.clock = clock
        self.state = ConfigState(clock())
        self._signature = _signature(paths.config_file)
        self._raw = _read(paths.config_file)

    def check(self) -> bool:
        """Look at the file once; True when an edit was applied."""
        config = self._edited()
        if config is None:
            return False
        started = self.started
        held = {key: getattr(started, key) for key in RESTART_KEYS if getattr(config, key) != getattr(started, key)}
        self.apply(config.model_copy(update=held) if held else config)
        waiting = tuple(RESTART_KEYS[key] for key in held)
        self.state = ConfigState(self.clock(), restart_needed=waiting)
        self.store.record_event("config_applied", SERVER, data={"restart_needed": list(waiting)})
        log.info("configuration applied", extra={"action": "config_applied", "restart_needed": list(waiting)})
        return True

    def _edited(self) -> ProjectConfig | None:
        """The file's new configuration if it changed and loads; None when unchanged, gone, or refused."""
        path = self.paths.config_file
        signature = _signature(path)
        if signature == self._signature:
            return None
        self._signature = signature
        raw = _read(path)
        if raw is None or raw == self._raw:
            return None  # gone for a moment (an editor's save), or touched without a change
        self._raw = raw
        try:
            return load_project_text(_decoded(raw, shown(path)), shown(path), self.env)
        except ConfigError as err:
            self._refused(str(err))
            return None

    def _refused(self, error: str) -> None:
        self.state = dataclasses.replace(self.state, error=error, refused_at=self.clock())
        self.store.record_event("config_refused", SERVER, reason=error)
        log.warning("configuration edit refused; the last good one stays", extra={"action": "config_refused",
                                                                                    "error": error})  # fmt: skip

    @contextlib.asynccontextmanager
    async def watching(self, every_s: float = POLL_S) -> AsyncIterator[ConfigWatch]:
        """Check every ``every_s`` while the block runs."""

        async def poll() -> None:
            while True:
                await asyncio.sleep(every_s)
                try:
                    self.check()  # in the loop: what it applies, the pipeline's tasks share (a stat if unchanged)
                except Exception:  # a store that is down for a moment: the next look tries again
                    log.exception("configuration check failed", extra={"action": "config_check_failed"})

        task = asyncio.create_task(poll(), name="configuration watch")
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def configure(agents: AgentRuns, config: ProjectConfig) -> None:
    """What the agents' side takes from the configuration, at start and after each edit: prices, leases, and what
    build nodes run around and after their agents (hooks, gates)."""
    agents.prices = config.price_table()
    agents.remote.lease_s = config.nodes.lease_s
    agents.node_gates = config.node_gates()
    agents.node_hooks = config.node_hooks()


def retune(
    agents: AgentRuns, paths: ProjectPaths, old: ProjectConfig, new: ProjectConfig, env: Mapping[str, str]
) -> None:
    """What the agents' side takes from a new configuration: the sandbox, ``configure``'s part, and the
    inactivity timeout (only when the edit changed it: a server started with its own runner settings keeps them)."""
    agents.rooms = Rooms.of(paths, new, env)
    configure(agents, new)
    if new.inactivity_timeout_s != old.inactivity_timeout_s:
        agents.runner.settings = agents.runner.settings.model_copy(
            update={"inactivity_timeout_s": new.inactivity_timeout_s}
        )


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_mtime_ns, found.st_size, found.st_ino


def _decoded(raw: bytes, where: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(where, f"expected UTF-8 text, got an invalid byte at offset {err.start}") from None


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None
