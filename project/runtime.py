"""Builds the engine from the settings, with the services' hooks; starts it with the server, ends it at shutdown.

This is the composition root: the only module that knows both the runtime (:mod:`runtime`) and
the services that plug into it. It hands the engine down (``project/asgi.py`` puts it in every
connection's ASGI scope); nothing reaches it through a global. Start-up also recovers from an
earlier run that did not end cleanly (a crash, a SIGKILL): leftover CLI processes are ended and
their turns marked interrupted, whichever way the server was started.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from asgiref.sync import sync_to_async
from django.conf import settings

from chat.services import agents
from chat.services.recovery import recover_interrupted
from chat.services.turns import TurnHooks
from drivers.claude import LiveSession, LiveSpec
from drivers.egress import EgressProxy
from runtime import LocalEngine, NodeRuntime, Process, ProcessFactory
from tasks.services import TaskHooks, recover_tasks

log = logging.getLogger(__name__)


async def live_session(spec: LiveSpec) -> Process:
    """The real process factory: a Claude Code CLI process driven through the Agent SDK."""
    session = LiveSession(spec)
    await session.start()
    return session


def build(
    *,
    max_processes: int | None = None,
    max_tasks: int | None = None,
    max_warm: int | None = None,
    max_file_operations: int | None = None,
    egress_dir: Path | None = None,
    factory: ProcessFactory = live_session,
) -> LocalEngine:
    """The engine with the limits of the settings (or the ones given); it starts its processes with
    ``factory``. Its egress proxy listens in ``egress_dir`` (default: the data folder's private
    ``sandbox`` folder) once started. Building starts nothing: :func:`start` does, on the loop."""
    node = NodeRuntime(
        factory=factory,
        max_processes=max_processes or settings.CLAUDE_MAX_CONCURRENT,
        max_warm=settings.CLAUDE_MAX_WARM if max_warm is None else max_warm,
        warm_idle=settings.CLAUDE_WARM_IDLE,
        max_file_operations=max_file_operations or settings.CLAUDE_MAX_FILE_OPERATIONS,
        egress=EgressProxy(folder=egress_dir or Path(settings.DATA_DIR) / "sandbox", policy=agents.egress_policy),
    )
    return LocalEngine(
        node=node,
        turn_hooks=TurnHooks(),
        task_hooks=TaskHooks(),
        max_tasks=max_tasks or settings.CLAUDE_MAX_TASKS,
        prewarm_seconds=settings.CLAUDE_PREWARM_SECONDS,
    )


def recover() -> list[str]:
    """End what an earlier run of the server left behind; what was done, for the log."""
    lines = []
    if turns := recover_interrupted():
        lines.append(f"Marked {turns} turn(s) left unfinished by the last run as interrupted.")
    if tasks := recover_tasks():
        lines.append(f"Marked {tasks} task(s) left running by the last run as interrupted (press Resume).")
    return lines


async def start(engine: LocalEngine, *, recover_first: bool = True) -> LocalEngine:
    """Start the engine on the running event loop (its egress proxy listening), recover, and start
    queued tasks."""
    await engine.start()
    if recover_first:
        for line in await sync_to_async(recover, thread_sensitive=False)():
            log.warning("%s", line)
    engine.kick_tasks()
    return engine


async def stop(engine: LocalEngine) -> None:
    await engine.shutdown()


def start_with_daphne(engine: LocalEngine) -> None:
    """Start the engine as soon as Daphne serves (not on the first request), and end it when Daphne stops.

    Daphne sends no ASGI lifespan events. Its Twisted reactor runs on the asyncio loop that serves
    the requests; a reactor that never runs (another server, the tests) starts nothing here."""
    from twisted.internet import defer, reactor

    starting: list[asyncio.Task[LocalEngine]] = []

    def on_running() -> None:
        starting.append(asyncio.ensure_future(start(engine)))

    def on_shutdown() -> defer.Deferred[None] | None:
        if not starting or not starting[0].done() or starting[0].exception() is not None:
            return None
        return defer.Deferred.fromFuture(asyncio.ensure_future(stop(engine)))

    # Startup triggers fire before the loop runs; callLater(0) runs on it.
    reactor.callWhenRunning(lambda: reactor.callLater(0, on_running))
    reactor.addSystemEventTrigger("before", "shutdown", on_shutdown)
