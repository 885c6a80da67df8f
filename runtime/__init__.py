"""The runtime: the one place that owns CLI processes and queues, built once when the server starts.

:class:`Runtime` holds the process pool, the per-session turn queues, the task scheduler and the
egress proxy, the one way out of the agents' sandboxes (:mod:`drivers.egress`).
``project.runtime`` builds it with the services' hooks and installs it; services reach it through
:func:`current`. No Django imports: arrows point from services down to here, never back.
"""

from __future__ import annotations

import asyncio

from drivers.egress import EgressProxy

from .pool import Pool, PoolStatus
from .scheduler import Hold, TaskHooks, TaskScheduler
from .turns import StopReason, Ticket, TurnJob, TurnQueue
from .warm import WarmPool

__all__ = [
    "Hold",
    "Pool",
    "PoolStatus",
    "Runtime",
    "RuntimeNotRunning",
    "StopReason",
    "TaskHooks",
    "TaskScheduler",
    "Ticket",
    "TurnJob",
    "TurnQueue",
    "WarmPool",
    "current",
    "install",
    "uninstall",
]


class RuntimeNotRunning(RuntimeError):
    """A service needed the runtime outside the server (or a test without the runtime fixture)."""


class Runtime:
    def __init__(
        self,
        *,
        max_processes: int,
        max_tasks: int,
        task_hooks: TaskHooks,
        max_warm: int = 8,
        warm_idle: float = 600.0,
        max_file_operations: int = 10,
        egress: EgressProxy | None = None,
    ) -> None:
        self.pool = Pool(max_processes)
        self.turns = TurnQueue(self.pool)
        self.tasks = TaskScheduler(limit=max_tasks, hooks=task_hooks)
        self.warm = WarmPool(max_warm=max_warm, idle_seconds=warm_idle)
        # Write/Edit/MultiEdit/NotebookEdit calls running at once, across all chats and tasks.
        self.file_ops = Pool(max_file_operations)
        # Started by the composition root; the sandboxes' bridge leads to its socket.
        self.egress = egress

    async def idle(self) -> None:
        """Wait until no turn and no task is left to run (tests use this)."""
        while True:
            await self.tasks.idle()
            await self.turns.idle()
            if not self.tasks.running and not self.turns.has_work():
                return
            # A finished task stays in ``running`` until its done callback runs; both waits above
            # return without yielding when nothing is unfinished, so yield here or spin for ever.
            await asyncio.sleep(0)

    async def shutdown(self) -> None:
        await self.tasks.shutdown()
        await self.turns.shutdown()
        await self.warm.shutdown()
        if self.egress is not None:
            # Last: a turn that ends during the shutdown may still be streaming through it.
            await self.egress.close()


_current: Runtime | None = None


def install(runtime: Runtime) -> None:
    global _current
    _current = runtime


def uninstall(runtime: Runtime) -> None:
    global _current
    if _current is runtime:
        _current = None


def current() -> Runtime:
    if _current is None:
        raise RuntimeNotRunning(
            "The turn runtime is not running in this process: turns run inside the server (project.asgi:application)."
        )
    return _current
