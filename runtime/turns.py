"""One queue per session: every turn, from a chat page, the API or a task, runs through here.

Turns of one session run strictly one at a time in the order they were submitted (two CLI
runs resuming one session at once fork its transcript). Each session has one worker while it
has turns; each turn takes a slot of the process pool while it runs. Every asyncio task is
tracked, so a turn outlives the request or socket that submitted it and nothing is leaked on
shutdown. No Django imports: what a turn does is the :class:`TurnJob` handed in.

A turn's process slot is the node's (:meth:`runtime.node.NodeRuntime.slot`): a Stop of a turn that
holds one goes to the node, which interrupts the turn; a turn still waiting is dropped.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

from asgiref.sync import ThreadSensitiveContext

from .node import NodeRuntime
from .outcomes import StopReason

log = logging.getLogger(__name__)


class TurnJob(Protocol):
    """What a turn does; the service that submits it implements these."""

    async def waiting(self) -> None:
        """Every process slot is taken: the turn waits for one (called at most once)."""

    async def run(self, ticket: Ticket) -> None:
        """Run the turn with a slot held (a Stop reaches it through the node). Cancelled only when the
        server shuts down before it could end by itself."""

    async def dropped(self, reason: StopReason) -> None:
        """The turn ends without having run (withdrawn, stopped or shut down while it waited)."""


@dataclass(eq=False)
class Ticket:
    """A submitted turn: await :attr:`done` for its end; :attr:`started` is set once it runs."""

    key: int
    session: str
    owner: int | None
    job: TurnJob
    started: asyncio.Event = field(default_factory=asyncio.Event)
    done: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    stop_reason: StopReason | None = None
    task: asyncio.Task[None] | None = None

    async def wait(self) -> None:
        await asyncio.shield(self.done)

    async def wait_started(self) -> bool:
        """Until it runs (True) or has ended without running (False)."""
        started: asyncio.Future[object] = asyncio.ensure_future(self.started.wait())
        ended: asyncio.Future[object] = asyncio.ensure_future(self.wait())
        try:
            await asyncio.wait({started, ended}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            started.cancel()
            ended.cancel()
        return self.started.is_set()


class TurnQueue:
    def __init__(self, node: NodeRuntime) -> None:
        self.node = node
        self._queues: dict[str, deque[Ticket]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._current: dict[str, Ticket] = {}
        self._closed = False

    # -- submitting -------------------------------------------------------------------
    def submit(self, *, key: int, session: str, owner: int | None, job: TurnJob) -> Ticket:
        """Queue a turn behind the session's earlier ones; it runs even if the caller goes away."""
        ticket = Ticket(key=key, session=session, owner=owner, job=job)
        self._queues.setdefault(session, deque()).append(ticket)
        worker = self._workers.get(session)
        if worker is None or worker.done():
            # A fresh context: the worker outlives the request or socket that submitted the
            # turn, and must not keep using that request's context (asgiref's executor in it).
            worker = asyncio.create_task(self._work(session), name=f"turns-{session}", context=contextvars.Context())
            self._workers[session] = worker
            worker.add_done_callback(functools.partial(self._forget, session))
        return ticket

    def _forget(self, session: str, worker: asyncio.Task[None]) -> None:
        if self._workers.get(session) is worker:
            del self._workers[session]
        if not worker.cancelled() and worker.exception() is not None:
            log.error("the turn worker of session %s failed", session, exc_info=worker.exception())

    async def _work(self, session: str) -> None:
        # Its own thread for the synchronous calls (database) of its turns: never the thread of
        # the request that submitted them, which may be gone, nor one a request may be holding.
        while True:
            async with ThreadSensitiveContext():
                await self._work_through(session)
            # Closing the context waits for its thread to end: a turn submitted meanwhile found
            # this worker still running and started none. Serve it here (no await between this
            # check and the end of the task, so nothing can slip in after it).
            if not self._queues.get(session):
                return

    async def _work_through(self, session: str) -> None:
        queue = self._queues[session]
        try:
            while queue and not self._closed:
                ticket = queue.popleft()
                self._current[session] = ticket
                ticket.task = asyncio.create_task(self._run(ticket), name=f"turn-{ticket.key}")
                try:
                    await asyncio.shield(ticket.task)
                except asyncio.CancelledError:
                    me = asyncio.current_task()
                    if me is not None and me.cancelling():
                        # Shutdown: end the running turn first (it reads why), then drop the queued ones.
                        ticket.stop_reason = ticket.stop_reason or StopReason.SHUTDOWN
                        ticket.task.cancel()
                        await asyncio.gather(ticket.task, return_exceptions=True)
                        raise
                    # The turn itself was stopped before its first step ran.
                    await self._drop(ticket, ticket.stop_reason or StopReason.STOPPED)
                finally:
                    self._current.pop(session, None)
        finally:
            while queue:
                ticket = queue.popleft()
                await self._drop(ticket, StopReason.SHUTDOWN)
            if self._queues.get(session) is queue and not queue:
                del self._queues[session]

    async def _run(self, ticket: Ticket) -> None:
        ran = False
        try:
            if ticket.stop_reason is not None:
                return
            async with self.node.slot(key=ticket.session, owner=ticket.owner, on_wait=ticket.job.waiting):
                if self._closed:
                    # The slot came free as the server began to shut down: the turn never runs.
                    ticket.stop_reason = ticket.stop_reason or StopReason.SHUTDOWN
                    await asyncio.shield(self._drop(ticket, ticket.stop_reason))
                    return
                ticket.started.set()
                ran = True
                await ticket.job.run(ticket)
        except asyncio.CancelledError:
            if ticket.stop_reason is None:
                ticket.stop_reason = StopReason.SHUTDOWN
            if ticket.stop_reason == StopReason.SHUTDOWN:
                if not ran:
                    await asyncio.shield(self._drop(ticket, StopReason.SHUTDOWN))
                raise
        except Exception:
            log.exception("turn %s failed", ticket.key)
        finally:
            if not ran and ticket.stop_reason is not None and ticket.stop_reason != StopReason.SHUTDOWN:
                await asyncio.shield(self._drop(ticket, ticket.stop_reason))
            if not ticket.done.done():
                ticket.done.set_result(None)

    async def _drop(self, ticket: Ticket, reason: StopReason) -> None:
        if ticket.done.done():
            return
        try:
            await ticket.job.dropped(reason)
        except Exception:
            log.exception("dropping turn %s failed", ticket.key)
        finally:
            if not ticket.done.done():
                ticket.done.set_result(None)

    # -- control ----------------------------------------------------------------------
    def stop(self, session: str, *, reason: StopReason = StopReason.STOPPED) -> bool:
        """Stop the session's current turn (running: through the node, which interrupts it; waiting for
        a slot: dropped); False if there is none. ``reason``: a person's Stop, or the node leaving."""
        ticket = self._current.get(session)
        if ticket is None:
            # Just submitted, not yet taken by the session's worker: it is the turn about to run.
            # Marked, it ends as dropped when the worker takes it (see _run).
            queue = self._queues.get(session)
            if not queue or queue[0].stop_reason is not None:
                return False
            queue[0].stop_reason = reason
            return True
        if ticket.task is None or ticket.task.done():
            return False
        if ticket.started.is_set() and not self.node.stop(session, reason=reason):
            return False  # it has just given its slot back: it is ending
        ticket.stop_reason = ticket.stop_reason or reason
        if not ticket.started.is_set():
            ticket.task.cancel()  # it holds no slot yet: it ends as dropped
        return True

    async def withdraw(self, ticket: Ticket) -> bool:
        """Take back a turn that has not started running: it never runs (its job is told it was
        dropped). False if it runs or has ended already."""
        if ticket.started.is_set() or ticket.done.done():
            return False
        queue = self._queues.get(ticket.session)
        ticket.stop_reason = StopReason.WITHDRAWN
        if queue is not None and ticket in queue:
            queue.remove(ticket)
            await self._drop(ticket, StopReason.WITHDRAWN)
            return True
        if ticket.task is not None:
            ticket.task.cancel()
        await ticket.wait()
        return True

    def find(self, session: str, key: int) -> Ticket | None:
        """The session's ticket of turn ``key`` (queued, or the current one), if it is here."""
        current = self._current.get(session)
        if current is not None and current.key == key:
            return current
        return next((ticket for ticket in self._queues.get(session, ()) if ticket.key == key), None)

    def waiting_for(self, owner: int) -> int:
        """How many of the owner's turns wait (queued, or for a process slot), across their sessions."""
        queued = sum(1 for queue in self._queues.values() for ticket in queue if ticket.owner == owner)
        current = sum(1 for ticket in self._current.values() if ticket.owner == owner and not ticket.started.is_set())
        return queued + current

    def current(self, session: str) -> Ticket | None:
        return self._current.get(session)

    def has_work(self) -> bool:
        return any(not worker.done() for worker in self._workers.values())

    def is_busy(self, session: str) -> bool:
        worker = self._workers.get(session)
        return worker is not None and not worker.done()

    async def idle(self) -> None:
        """Wait until no session has turns left (tests use this)."""
        # Only unfinished workers: a finished one may still be listed until its callback runs.
        while pending := [task for task in self._workers.values() if not task.done()]:
            await asyncio.wait(pending)

    def close(self) -> None:
        """Start no more turns: those still queued are dropped as the server shuts down."""
        self._closed = True

    async def shutdown(self, *, grace: float = 0.0) -> None:
        """End every turn and drop the queued ones. Running turns get ``grace`` seconds to end by
        themselves (the node ended them: they record how); then whatever runs is cancelled."""
        self.close()
        running = [ticket.done for ticket in self._current.values() if ticket.started.is_set()]
        if running and grace > 0:
            await asyncio.wait(running, timeout=grace)
        workers = list(self._workers.values())
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        # A worker cancelled before its first step dropped nothing: its turns are dropped here.
        for session, queue in list(self._queues.items()):
            while queue:
                await self._drop(queue.popleft(), StopReason.SHUTDOWN)
            if self._queues.get(session) is queue:
                del self._queues[session]
