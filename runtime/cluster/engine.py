"""The cluster engine: turns and task runs are jobs of a PostgreSQL queue (procrastinate), run by engine
processes; web processes only queue, stop and wait.

No Django imports. The same class serves both kinds of process: in a web process it has no node (it
queues jobs, aborts them, reads the records); in an engine process (``scripts/manage engine``) it
also has a :class:`runtime.node.NodeRuntime` and runs the jobs (:mod:`runtime.cluster.jobs`) that the
worker (:mod:`runtime.cluster.serving`) takes from its node's queue and the shared one.

- A turn's job has the lock ``session:<uuid>``: procrastinate never runs two jobs of one lock at once
  anywhere in the cluster, and runs those of one priority in the order they were queued (all turns
  have priority 0). It goes to the queue of the node holding the session's warm process when that
  node is alive and not draining, else to the shared queue; the node that takes it becomes the
  session's home.
- Stop and withdraw are procrastinate's cancel: a job not yet taken is cancelled (the turn is marked
  here); a taken one is aborted (LISTEN/NOTIFY), and the node interrupts the turn through the
  control protocol, or drops it if it has not started.
- Waiting for a turn reads its record, woken by PostgreSQL's NOTIFY (:mod:`runtime.cluster.watch`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, LiteralString

import procrastinate
from procrastinate import exceptions as pq_exceptions

from drivers.egress import EgressProxy

from ..engine import Engine, TaskHooks, TurnHooks
from ..local import _SavedTurn
from ..node import NodeRuntime
from ..outcomes import StopReason
from ..pool import PoolStatus
from ..turns import Ticket, TurnQueue
from .hooks import (
    CLOSE_JOB,
    SCHEDULE_JOB,
    SCHEDULER_LOCK,
    SHARED_QUEUE,
    TURN_JOB,
    ClusterHooks,
    TurnState,
    node_queue,
    session_lock,
    task_lock,
)
from .watch import TurnWatch

log = logging.getLogger(__name__)

# How often a wait for a task's run to end reads its job again.
SETTLE_POLL_SECONDS = 0.2

_LIVE_JOBS: LiteralString = (
    "SELECT id, status, args FROM procrastinate_jobs WHERE lock = %(lock)s AND status IN ('todo', 'doing') ORDER BY id"
)


@dataclass(frozen=True)
class Limits:
    """What the cluster's timing is (the settings)."""

    heartbeat: float = 2.0
    dead_after: float = 20.0
    drain_grace: float = 60.0
    max_tasks: int = 5


@dataclass(frozen=True)
class _Job:
    id: int
    status: str
    args: dict[str, Any]


class ClusterEngine(Engine):
    def __init__(
        self,
        *,
        app: procrastinate.App,
        tx_app: procrastinate.App,
        hooks: ClusterHooks,
        turn_hooks: TurnHooks,
        task_hooks: TaskHooks,
        watch: TurnWatch,
        node_id: str,
        limits: Limits,
        node: NodeRuntime | None = None,
    ) -> None:
        self.app = app  # its own connections: the worker, aborts, reads
        self.tx_app = tx_app  # the caller's connection: a job queued in the transaction that saves its turn
        self.hooks = hooks
        self.turn_hooks = turn_hooks
        self.task_hooks = task_hooks
        self.watch = watch
        self.node_id = node_id
        self.limits = limits
        self.node = node
        self.turns = TurnQueue(node) if node is not None else None
        self._tickets: dict[int, Ticket] = {}
        self._queued: set[int] = set()  # turns queued in their saving transaction, by this process
        self._background: set[asyncio.Task[Any]] = set()
        self.task_stops: dict[int, str] = {}  # why a task's run here was stopped
        self.running_tasks: dict[int, asyncio.Task[None]] = {}
        self.draining = False
        self.closing = False
        self.board_note: str | None = None  # as this node last told it (None: not yet)

    # -- queueing -------------------------------------------------------------------------
    def _turn_job(self, queue: str, session: str) -> Any:
        return self.tx_app.configure_task(TURN_JOB, queue=queue, lock=session_lock(session), priority=0)

    def queue_in_transaction(self, *, turn: int, session: str, owner: int | None) -> bool:
        home = self.hooks.home_sync(session)
        queue = node_queue(home) if home else SHARED_QUEUE
        self._turn_job(queue, session).defer(turn=turn, session=session, owner=owner)
        self._queued.add(turn)
        return True

    async def submit(self, *, turn: int, session: str, owner: int | None, local: object = None) -> None:
        if local is not None:
            # A task's turn runs within its task's run, on this node (its callbacks live here).
            if self.turns is None or self.node is None:
                raise RuntimeError("a task's turn runs only on an engine node")
            await self.hooks.taken(turn=turn, session=session, node=self.node_id)
            job = _SavedTurn(turn, hooks=self.turn_hooks, node=self.node, local=local)
            self.track(self.turns.submit(key=turn, session=session, owner=owner, job=job))
            return
        if turn in self._queued:
            self._queued.discard(turn)
            return
        home = await self.hooks.home(session)
        queue = node_queue(home) if home else SHARED_QUEUE
        await self.app.configure_task(TURN_JOB, queue=queue, lock=session_lock(session), priority=0).defer_async(
            turn=turn, session=session, owner=owner
        )

    def track(self, ticket: Ticket) -> Ticket:
        self._tickets[ticket.key] = ticket
        ticket.done.add_done_callback(lambda _: self._tickets.pop(ticket.key, None))
        return ticket

    async def _jobs(self, lock: str) -> list[_Job]:
        rows = await self.app.connector.execute_query_all_async(_LIVE_JOBS, lock=lock)
        return [_Job(id=row["id"], status=row["status"], args=dict(row["args"] or {})) for row in rows]

    async def _cancel(self, job: int, *, abort: bool) -> bool:
        try:
            return await self.app.job_manager.cancel_job_by_id_async(job, abort=abort)
        except pq_exceptions.ProcrastinateException:
            log.exception("cancelling job %s failed", job)
            return False

    # -- stopping -------------------------------------------------------------------------
    async def stop(self, *, session: str) -> bool:
        if self.turns is not None and self._local_turn(session):
            return self.turns.stop(session)
        jobs = await self._jobs(session_lock(session))
        running = [job for job in jobs if job.status == "doing"]
        if running:
            return await self._cancel(running[0].id, abort=True)
        for job in jobs[:1]:
            # Not taken by any node yet: it is the turn about to run; cancelled, it never runs.
            if await self._cancel(job.id, abort=False):
                await self.turn_hooks.dropped(int(job.args["turn"]), reason=StopReason.STOPPED, note="")
                return True
            return await self.stop(session=session)  # taken meanwhile: abort it
        return False

    def _local_turn(self, session: str) -> bool:
        """A turn of the session runs within a task's run on this node (not as a job of its own)."""
        assert self.turns is not None
        ticket = self.turns.current(session)
        return ticket is not None and _is_local(ticket)

    async def withdraw(self, *, session: str, turn: int, note: str) -> bool:
        if self.closing:
            # This web process is going away (a restart), not the caller giving up: the turn stays
            # queued and runs; its answer stays in the chat.
            return False
        ticket = self._tickets.get(turn)
        if ticket is not None and self.turns is not None and _is_local(ticket):
            if not isinstance(ticket.job, _SavedTurn):
                return False
            ticket.job.note = note
            return await self.turns.withdraw(ticket)
        for job in await self._jobs(session_lock(session)):
            if int(job.args.get("turn", 0)) != turn:
                continue
            if job.status == "todo" and await self._cancel(job.id, abort=False):
                await self.turn_hooks.dropped(turn, reason=StopReason.WITHDRAWN, note=note)
                return True
            if await self.hooks.turn_state(turn) != TurnState.WAITING:
                return False
            # Taken by a node, waiting there for a process slot: the node drops it unless it started.
            await self.hooks.set_stop_note(turn, note)
            await self._cancel(job.id, abort=True)
            return not await self.wait_started(turn=turn)
        return False

    # -- waiting --------------------------------------------------------------------------
    async def wait_started(self, *, turn: int) -> bool:
        ticket = self._tickets.get(turn)
        if ticket is not None:
            return await ticket.wait_started()
        while True:
            self._still_serving()
            with self.watch.watching(turn) as changed:
                state = await self.hooks.turn_state(turn)
                if state in (TurnState.RUNNING, TurnState.RAN):
                    return True
                if state in (TurnState.DROPPED, TurnState.UNKNOWN):
                    return False
                await self.watch.changed(changed)

    async def wait_ended(self, *, turn: int) -> None:
        ticket = self._tickets.get(turn)
        if ticket is not None:
            await ticket.wait()
            return
        while True:
            self._still_serving()
            with self.watch.watching(turn) as changed:
                if await self.hooks.turn_state(turn) not in (TurnState.WAITING, TurnState.RUNNING):
                    return
                await self.watch.changed(changed)

    def _still_serving(self) -> None:
        """A wait in a process that shuts down ends as its caller's would if it hung up: the turn goes on
        wherever it runs (a web restart interrupts nothing), the call ends with the process."""
        if self.closing:
            raise asyncio.CancelledError("this process is shutting down")

    async def waiting_for(self, *, owner: int) -> int:
        return await self.hooks.waiting_for(owner)

    async def pool_status(self) -> PoolStatus:
        return await self.hooks.cluster_status(dead_after=self.limits.dead_after)

    def close_warm(self, *, session: str, wait: float = 0.0) -> None:
        if self.node is not None:
            if wait:
                self.node.warm.close_and_wait(session, timeout=wait)
            else:
                self.node.warm.drop(session)
            return
        # Called from a synchronous service (deleting or archiving a chat), on its connection.
        home = self.hooks.home_sync(session)
        if not home:
            return  # no node holds it warm (it ends by itself after CLAUDE_WARM_IDLE if one does)
        job = self.tx_app.configure_task(CLOSE_JOB, queue=node_queue(home)).defer(session=session)
        if wait:
            _wait_for_job(self.tx_app, job, timeout=wait)

    # -- tasks ----------------------------------------------------------------------------
    def agent_egress(self) -> EgressProxy | None:
        return self.node.egress if self.node is not None else None

    def kick_tasks(self) -> None:
        self.spawn(self.schedule(), name="claude-schedule")

    async def schedule(self, **delay: float) -> None:
        """Queue a round of the task scheduler (one runs at a time in the cluster, one more may wait)."""
        with contextlib.suppress(pq_exceptions.AlreadyEnqueued):
            await self.app.configure_task(
                SCHEDULE_JOB,
                queue=SHARED_QUEUE,
                lock=SCHEDULER_LOCK,
                queueing_lock=SCHEDULER_LOCK,
                schedule_in=delay or None,
            ).defer_async()

    async def stop_task(self, *, task: int, reason: str) -> bool:
        jobs = await self._jobs(task_lock(task))
        if not jobs:
            return False
        await self.hooks.request_task_stop(task, reason)
        if jobs[0].status == "doing":
            await self._cancel(jobs[0].id, abort=True)
        # (Not taken yet: the run reads the request as it begins, and ends at once.)
        return True

    async def task_settled(self, *, task: int) -> None:
        running = self.running_tasks.get(task)
        if running is not None:
            await asyncio.gather(running, return_exceptions=True)
            return
        while True:
            if not await self._jobs(task_lock(task)):
                return
            await asyncio.sleep(SETTLE_POLL_SECONDS)

    def task_stop_reason(self, *, task: int) -> str | None:
        return self.task_stops.get(task)

    def spawn(self, job: Coroutine[Any, Any, Any], *, name: str) -> None:
        task = asyncio.get_running_loop().create_task(job, name=name)
        self._background.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s failed", task.get_name(), exc_info=task.exception())

    # -- life -----------------------------------------------------------------------------
    async def start(self) -> None:
        await self.app.open_async()
        self.watch.start()
        if self.node is not None:
            await self.node.start()

    async def idle(self) -> None:
        """Until no job is waiting or running anywhere, and nothing runs here (tests use this)."""
        while True:
            if self.turns is not None:
                await self.turns.idle()
            await asyncio.gather(*self._background, *self.running_tasks.values(), return_exceptions=True)
            rows = await self.app.connector.execute_query_all_async(
                "SELECT count(*) AS n FROM procrastinate_jobs WHERE status IN ('todo', 'doing')"
            )
            if not rows[0]["n"] and not self._background and not self.running_tasks:
                if self.turns is None or not self.turns.has_work():
                    return
            await asyncio.sleep(0.05)

    async def shutdown(self) -> None:
        self.closing = True
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self.watch.close()
        if self.node is not None:
            await self.node.shutdown()
        await self.app.close_async()


def _is_local(ticket: Ticket) -> bool:
    """A ticket a task's run submitted here (it carries the run's options), not a job's."""
    return isinstance(ticket.job, _SavedTurn) and ticket.job.local is not None


def _wait_for_job(app: procrastinate.App, job: int, *, timeout: float) -> None:
    """Wait (synchronously, on the caller's thread) until a job has run, at most ``timeout`` seconds."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if app.job_manager.get_job_status(job) not in (procrastinate.jobs.Status.TODO, procrastinate.jobs.Status.DOING):
            return
        time.sleep(0.1)
    log.warning("closing a warm process (job %s) did not finish within %s s", job, timeout)
