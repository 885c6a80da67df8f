"""Builds the runtime once, when the server starts, with the services' hooks; ends it at shutdown.

This is the composition root: the only module that knows both the runtime (:mod:`runtime`) and
the services that plug into it. Start-up also recovers from an earlier run that did not end
cleanly (a crash, a SIGKILL): leftover CLI processes are ended and their turns marked
interrupted, whichever way the server was started.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from asgiref.sync import sync_to_async
from django.conf import settings

import runtime
from chat.services import agents
from chat.services.recovery import recover_interrupted
from drivers.egress import EgressProxy
from tasks.services import TaskHooks, recover_tasks

log = logging.getLogger(__name__)


def build(
    *,
    max_processes: int | None = None,
    max_tasks: int | None = None,
    max_warm: int | None = None,
    max_file_operations: int | None = None,
    egress_dir: Path | None = None,
) -> runtime.Runtime:
    """The runtime with the limits of the settings (or the ones given). Its egress proxy listens in
    ``egress_dir`` (default: the data folder's private ``sandbox`` folder) once started."""
    return runtime.Runtime(
        max_processes=max_processes or settings.CLAUDE_MAX_CONCURRENT,
        max_tasks=max_tasks or settings.CLAUDE_MAX_TASKS,
        task_hooks=TaskHooks(),
        max_warm=settings.CLAUDE_MAX_WARM if max_warm is None else max_warm,
        warm_idle=settings.CLAUDE_WARM_IDLE,
        max_file_operations=max_file_operations or settings.CLAUDE_MAX_FILE_OPERATIONS,
        egress=EgressProxy(folder=egress_dir or Path(settings.DATA_DIR) / "sandbox", policy=agents.egress_policy),
    )


def recover() -> list[str]:
    """End what an earlier run of the server left behind; what was done, for the log."""
    lines = []
    if turns := recover_interrupted():
        lines.append(f"Marked {turns} turn(s) left unfinished by the last run as interrupted.")
    if tasks := recover_tasks():
        lines.append(f"Marked {tasks} task(s) left running by the last run as interrupted (press Resume).")
    return lines


async def start(
    *,
    recover_first: bool = True,
    max_processes: int | None = None,
    max_tasks: int | None = None,
    max_warm: int | None = None,
    max_file_operations: int | None = None,
    egress_dir: Path | None = None,
) -> runtime.Runtime:
    """Build and install the runtime on the running event loop (its egress proxy listening), recover,
    and start queued tasks."""
    built = build(
        max_processes=max_processes,
        max_tasks=max_tasks,
        max_warm=max_warm,
        max_file_operations=max_file_operations,
        egress_dir=egress_dir,
    )
    if built.egress is not None:
        await built.egress.start()
    runtime.install(built)
    if recover_first:
        for line in await sync_to_async(recover, thread_sensitive=False)():
            log.warning("%s", line)
    built.tasks.kick()
    return built


async def stop(built: runtime.Runtime) -> None:
    await built.shutdown()
    runtime.uninstall(built)


def start_with_daphne() -> None:
    """Start the runtime as soon as Daphne serves (not on the first request), and end it when Daphne stops.

    Daphne sends no ASGI lifespan events. Its Twisted reactor runs on the asyncio loop that serves
    the requests; a reactor that never runs (another server, the tests) starts nothing here."""
    from twisted.internet import defer, reactor

    starting: list[asyncio.Task[runtime.Runtime]] = []

    def on_running() -> None:
        starting.append(asyncio.ensure_future(start()))

    def on_shutdown() -> defer.Deferred[None] | None:
        if not starting or not starting[0].done() or starting[0].exception() is not None:
            return None
        return defer.Deferred.fromFuture(asyncio.ensure_future(stop(starting[0].result())))

    # Startup triggers fire before the loop runs; callLater(0) runs on it.
    reactor.callWhenRunning(lambda: reactor.callLater(0, on_running))
    reactor.addSystemEventTrigger("before", "shutdown", on_shutdown)
