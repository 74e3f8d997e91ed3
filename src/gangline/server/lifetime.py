"""The orchestrator's lifetime inside the app: started by the lifespan, stopped (bounded) at shutdown."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from gangline.core.profiles import RunnerSettings
from gangline.pipeline.orchestrator import Orchestrator

log = logging.getLogger(__name__)


class Serving:
    """The orchestrator the app drives: started by the lifespan, stopped (bounded) at shutdown.

    ``on_stop`` is called when the orchestrator ends by itself (a crash, or another server
    holding the project lock), so whoever runs the server can stop serving too. ``closing``
    is set when shutdown begins, so event streams end and the
    server need not wait out its graceful timeout for them.
    """

    def __init__(self, shutdown_s: float) -> None:
        self.shutdown_s = shutdown_s
        self.error: Exception | None = None
        self.on_stop: Callable[[], None] = lambda: None
        self.closing = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @asynccontextmanager
    async def run(self, orch: Orchestrator) -> AsyncIterator[None]:
        self.error, self.closing = None, asyncio.Event()
        task = asyncio.create_task(self._drive(orch), name="orchestrator")
        self._task = task
        # serve() takes the project lock in its first step: let it, so a locked project is known at startup.
        await asyncio.sleep(0)
        try:
            yield
        finally:
            self.closing.set()
            task.cancel()  # serve() stops its runs; their items keep their sessions for the next start
            done, _ = await asyncio.wait({task}, timeout=self.shutdown_s)
            if not done:
                log.error("orchestrator did not stop in time", extra={"action": "shutdown_timeout"})

    async def _drive(self, orch: Orchestrator) -> None:
        try:
            await orch.serve()
        except Exception as err:
            self.error = err
            log.error("orchestrator stopped", exc_info=err, extra={"action": "orchestrator_failed", "error": str(err)})
            self.on_stop()


def shutdown_bound(settings: RunnerSettings) -> float:
    """How long shutdown waits for the runs to stop: the runner's own bound, plus room to record them."""
    return settings.kill_grace_s + settings.drain_timeout_s + 15.0
