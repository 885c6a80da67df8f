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
from runtime import Engine, FileSlots, LocalEngine, NodeRuntime, Process, ProcessFactory
from runtime.cluster import ClusterEngine, ClusterFileSlots, Limits, TurnWatch
from tasks.services import TaskHooks, recover_tasks
from tasks.services.cluster import Cluster

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
    node = _node(
        factory=factory,
        max_processes=max_processes,
        max_warm=max_warm,
        max_file_operations=max_file_operations,
        egress_dir=egress_dir,
    )
    return LocalEngine(
        node=node,
        turn_hooks=TurnHooks(),
        task_hooks=TaskHooks(),
        max_tasks=max_tasks or settings.CLAUDE_MAX_TASKS,
        prewarm_seconds=settings.CLAUDE_PREWARM_SECONDS,
    )


def _node(
    *,
    factory: ProcessFactory,
    max_processes: int | None,
    max_warm: int | None,
    max_file_operations: int | None,
    egress_dir: Path | None,
    file_slots: FileSlots | None = None,
) -> NodeRuntime:
    return NodeRuntime(
        factory=factory,
        file_slots=file_slots,
        max_processes=max_processes or settings.CLAUDE_MAX_CONCURRENT,
        max_warm=settings.CLAUDE_MAX_WARM if max_warm is None else max_warm,
        warm_idle=settings.CLAUDE_WARM_IDLE,
        max_file_operations=max_file_operations or settings.CLAUDE_MAX_FILE_OPERATIONS,
        egress=EgressProxy(folder=egress_dir or Path(settings.DATA_DIR) / "sandbox", policy=agents.egress_policy),
    )


def build_cluster(
    *,
    with_node: bool,
    max_processes: int | None = None,
    max_tasks: int | None = None,
    max_warm: int | None = None,
    max_file_operations: int | None = None,
    egress_dir: Path | None = None,
    factory: ProcessFactory = live_session,
) -> ClusterEngine:
    """The cluster engine (``CLAUDE_ENGINE=cluster``): a web process's (``with_node=False``: it queues,
    stops and waits) or an engine process's (it also runs jobs on this machine's node)."""
    from procrastinate import App, PsycopgConnector
    from procrastinate.contrib.django.django_connector import DjangoConnector
    from procrastinate.contrib.django.utils import connector_params

    params = connector_params()
    limits = Limits(
        heartbeat=settings.CLAUDE_NODE_HEARTBEAT,
        dead_after=settings.CLAUDE_NODE_DEAD_AFTER,
        drain_grace=settings.CLAUDE_DRAIN_GRACE,
        max_tasks=max_tasks or settings.CLAUDE_MAX_TASKS,
    )
    node = None
    if with_node:
        node = _node(
            factory=factory,
            max_processes=max_processes,
            max_warm=max_warm,
            max_file_operations=max_file_operations,
            # A folder per node: engines sharing a data folder (one machine) each have a proxy of their own.
            egress_dir=egress_dir or Path(settings.DATA_DIR) / "sandbox" / settings.CLAUDE_NODE_ID,
            # Counted across every node, not per machine.
            file_slots=ClusterFileSlots(
                conninfo=params, limit=max_file_operations or settings.CLAUDE_MAX_FILE_OPERATIONS
            ),
        )
    return ClusterEngine(
        # A small pool of its own (the worker's fetches, aborts, LISTEN); the saving transaction's
        # connection for a turn's job (DjangoConnector), so the turn and its job are one commit.
        app=App(connector=PsycopgConnector(kwargs=params, min_size=1, max_size=8 if with_node else 4)),
        tx_app=App(connector=DjangoConnector()),
        hooks=Cluster(dead_after=limits.dead_after),
        turn_hooks=TurnHooks(),
        task_hooks=TaskHooks(),
        watch=TurnWatch(params),
        node_id=settings.CLAUDE_NODE_ID,
        limits=limits,
        node=node,
    )


def build_for_settings() -> Engine:
    """The web server's engine: in cluster mode one that only queues, stops and waits."""
    if settings.CLAUDE_ENGINE == "cluster":
        return build_cluster(with_node=False)
    return build()


def recover() -> list[str]:
    """End what an earlier run of the server left behind; what was done, for the log."""
    lines = []
    if turns := recover_interrupted():
        lines.append(f"Marked {turns} turn(s) left unfinished by the last run as interrupted.")
    if tasks := recover_tasks():
        lines.append(f"Marked {tasks} task(s) left running by the last run as interrupted (press Resume).")
    return lines


async def start[E: Engine](engine: E, *, recover_first: bool = True) -> E:
    """Start the engine on the running event loop (its egress proxy listening), recover, and start
    queued tasks. A web process of a cluster recovers nothing and starts nothing: its engines do."""
    await engine.start()
    if isinstance(engine, ClusterEngine):
        return engine
    if recover_first:
        for line in await sync_to_async(recover, thread_sensitive=False)():
            log.warning("%s", line)
    engine.kick_tasks()
    return engine


async def stop(engine: Engine) -> None:
    await engine.shutdown()


def start_with_daphne(engine: Engine) -> None:
    """Start the engine as soon as Daphne serves (not on the first request), and end it when Daphne stops.

    Daphne sends no ASGI lifespan events. Its Twisted reactor runs on the asyncio loop that serves
    the requests; a reactor that never runs (another server, the tests) starts nothing here."""
    from twisted.internet import defer, reactor

    starting: list[asyncio.Task[Engine]] = []

    def on_running() -> None:
        starting.append(asyncio.ensure_future(start(engine)))

    def on_shutdown() -> defer.Deferred[None] | None:
        if not starting or not starting[0].done() or starting[0].exception() is not None:
            return None
        return defer.Deferred.fromFuture(asyncio.ensure_future(stop(engine)))

    # Startup triggers fire before the loop runs; callLater(0) runs on it.
    reactor.callWhenRunning(lambda: reactor.callLater(0, on_running))
    reactor.addSystemEventTrigger("before", "shutdown", on_shutdown)
