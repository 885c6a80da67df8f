"""The engine: what services, pages, sockets and the API may ask of whatever runs turns and tasks.

No Django imports. The composition root (``project/runtime.py``) builds one and hands it down: web
code finds it in the ASGI scope, services take it as a keyword argument (``engine: Engine``), the
engine's own jobs get it passed in. Nothing reaches it through a global.

Turns are submitted by the id of a turn already saved (the services save it first): the engine
knows how to run a saved turn through the :class:`TurnHooks` it was built with, so that it can run
it anywhere it likes. :class:`runtime.local.LocalEngine` runs everything in this process, on one
node (:class:`runtime.node.NodeRuntime`); another implementation may run turns on other processes
behind the same methods.
"""

from __future__ import annotations

import abc
from collections.abc import Coroutine
from typing import Any, Protocol

from drivers.claude import LiveSpec
from drivers.egress import EgressProxy

from .node import NodeRuntime
from .outcomes import StopReason
from .pool import PoolStatus
from .scheduler import Hold


class TurnHooks(Protocol):
    """How a saved turn is run; the services implement these (by turn id: nothing else need travel)."""

    async def waiting(self, turn: int) -> None:
        """Every process slot is taken: the turn waits for one (called at most once)."""

    async def run(self, turn: int, *, node: NodeRuntime, local: object) -> None:
        """Run the turn on ``node`` (its slot held) to its end, and record how it ended. ``local``: what
        its submitter handed in for a run in this process (a task's callbacks), or None."""

    async def dropped(self, turn: int, *, reason: StopReason, note: str) -> None:
        """The turn ends without having run (cancelled, withdrawn with ``note``, stopped or shut down
        while it waited)."""

    async def spec_ahead(self, session: str, *, owner: int, draft: object, node: NodeRuntime) -> LiveSpec | None:
        """How the session's next chat turn would start its process on ``node``, for starting it ahead
        (None: not to be started ahead: not the owner's, archived, a task's). ``draft``: what the
        services handed in for a chat not saved yet (None for a saved one)."""


class TaskHooks(Protocol):
    """What the task scheduler needs of the tasks app."""

    async def claim_next(self, exclude: set[int]) -> int | None:
        """Mark the next queued task as running and return its id (None: nothing is queued)."""

    async def run(self, task_id: int, *, engine: Engine) -> None:
        """One run of a claimed task, to its end. Cancelled to stop it (see :meth:`Engine.task_stop_reason`)."""

    async def hold(self) -> Hold | None:
        """Whether new starts must wait now."""

    async def note_changed(self, note: str) -> None:
        """The scheduler's note changed (empty: nothing held back)."""


class EngineNotRunning(RuntimeError):
    """Something needed the engine where none runs (a management command, a test without one)."""


class Engine(abc.ABC):
    """Turns and tasks, wherever they run."""

    # -- turns ----------------------------------------------------------------------------------
    @abc.abstractmethod
    async def submit(self, *, turn: int, session: str, owner: int | None, local: object = None) -> None:
        """Queue a saved turn behind its session's earlier ones (whoever sent them); it runs when they
        are done and a process slot is free, even if the caller goes away. ``owner``: whose share of
        the slots it takes. ``local``: see :meth:`TurnHooks.run`."""

    def queue_in_transaction(self, *, turn: int, session: str, owner: int | None) -> bool:
        """Called (synchronously) inside the transaction that saves a turn. An engine whose queue lives in
        the database queues the turn there, so the turn and its place in the queue are one commit, and
        says True (:meth:`submit` is then only told the commit happened). The local engine queues in
        memory after the commit: False."""
        return False

    @abc.abstractmethod
    async def stop(self, *, session: str) -> bool:
        """Stop the session's current turn (running: interrupted; waiting for a slot: dropped). False if
        there is none."""

    @abc.abstractmethod
    async def withdraw(self, *, session: str, turn: int, note: str) -> bool:
        """Take back a turn that has not started: it never runs (its hooks hear ``note``). False if it
        runs, has ended, or is not known here."""

    @abc.abstractmethod
    async def wait_started(self, *, turn: int) -> bool:
        """Wait until a submitted turn runs (True), or has ended without running (False)."""

    @abc.abstractmethod
    async def wait_ended(self, *, turn: int) -> None:
        """Wait until a submitted turn has ended (at once if it is not known here any more)."""

    @abc.abstractmethod
    async def waiting_for(self, *, owner: int) -> int:
        """How many of the owner's turns wait (queued, or for a process slot)."""

    @abc.abstractmethod
    async def pool_status(self) -> PoolStatus:
        """The process slots: taken, their limit, turns waiting for one, turns that asked for one."""

    async def prewarm(self, *, session: str, owner: int, draft: object = None) -> bool:
        """Start the process the session's next turn would take, before that turn is sent (its page is
        open): the turn then finds it warm. Within the warm limit and the member's share of it; closed
        if no turn comes soon. ``draft``: for a chat not saved yet, what the services need to know
        where it will run (see :meth:`TurnHooks.spec_ahead`). True if one is being started; an engine
        that cannot start processes ahead starts none."""
        return False

    @abc.abstractmethod
    def close_warm(self, *, session: str, wait: float = 0.0) -> None:
        """Close the session's warm process, if it has one and no turn runs in it (a deleted or archived
        chat). With ``wait``, return once it has exited (at most that many seconds): what the CLI
        writes as it exits is then on disk. Callable from any thread; a wait only from one other than
        the engine's loop."""

    # -- tasks ----------------------------------------------------------------------------------
    def agent_egress(self) -> EgressProxy | None:
        """The egress proxy of the node whose agents run here (None: none run in this process): the
        way out of a sandbox started within a task's run for other than its turn (its project's
        setup and check commands), which must have the same network as the task's agent."""
        return None

    @abc.abstractmethod
    def kick_tasks(self) -> None:
        """Start queued tasks while there is room (after queueing one, or freeing room)."""

    @abc.abstractmethod
    async def stop_task(self, *, task: int, reason: str) -> bool:
        """Stop a running task's run with a reason it reads back; False if it does not run."""

    @abc.abstractmethod
    async def task_settled(self, *, task: int) -> None:
        """Wait until the task's run (if any) has ended."""

    @abc.abstractmethod
    def task_stop_reason(self, *, task: int) -> str | None:
        """Why the task's run was stopped (None: it was not)."""

    @abc.abstractmethod
    def spawn(self, job: Coroutine[Any, Any, Any], *, name: str) -> None:
        """Run a follow-up in the background (a rebase after a merge), tracked: never lost, awaited at
        shutdown."""

    # -- life -----------------------------------------------------------------------------------
    @abc.abstractmethod
    async def start(self) -> None:
        """Start serving (on the running loop)."""

    @abc.abstractmethod
    async def idle(self) -> None:
        """Wait until no turn and no task is left to run (tests use this)."""

    @abc.abstractmethod
    async def shutdown(self) -> None:
        """End everything: running turns end as interrupted, queued ones are dropped."""


class NoEngine(Engine):
    """Where no engine runs: every call says so (what only ends a process it may skip: there is none)."""

    def _missing(self) -> EngineNotRunning:
        return EngineNotRunning(
            "The engine that runs turns is not running in this process: turns run inside the server "
            "(project.asgi:application)."
        )

    async def submit(self, *, turn: int, session: str, owner: int | None, local: object = None) -> None:
        raise self._missing()

    async def stop(self, *, session: str) -> bool:
        raise self._missing()

    async def withdraw(self, *, session: str, turn: int, note: str) -> bool:
        raise self._missing()

    async def wait_started(self, *, turn: int) -> bool:
        raise self._missing()

    async def wait_ended(self, *, turn: int) -> None:
        raise self._missing()

    async def waiting_for(self, *, owner: int) -> int:
        raise self._missing()

    async def pool_status(self) -> PoolStatus:
        raise self._missing()

    def close_warm(self, *, session: str, wait: float = 0.0) -> None:
        return  # no engine here: no warm process either

    def kick_tasks(self) -> None:
        raise self._missing()

    async def stop_task(self, *, task: int, reason: str) -> bool:
        raise self._missing()

    async def task_settled(self, *, task: int) -> None:
        raise self._missing()

    def task_stop_reason(self, *, task: int) -> str | None:
        raise self._missing()

    def spawn(self, job: Coroutine[Any, Any, Any], *, name: str) -> None:
        job.close()
        raise self._missing()

    async def start(self) -> None:
        raise self._missing()

    async def idle(self) -> None:
        return

    async def shutdown(self) -> None:
        return
