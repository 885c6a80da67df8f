"""The jobs an engine node runs: a turn, a task's run, a round of the task scheduler, closing a warm process.

No Django imports. A job is an asyncio task of procrastinate's worker; an abort (a person's Stop, a
Pause, or the worker shutting down after its grace) cancels it. Each job here runs its work in a
task of its own and turns that cancellation into what the work understands: the node's interrupt
of the turn (the process stays warm), a withdrawal, a task's stop reason. Why it was aborted is
procrastinate's abort reason: a person's request, or the node shutting down.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from procrastinate import JobContext, RetryDecision
from procrastinate.job_context import AbortReason
from procrastinate.jobs import Job
from procrastinate.retry import BaseRetryStrategy

from ..local import _SavedTurn
from ..outcomes import StopReason
from ..turns import Ticket
from .hooks import CLOSE_JOB, SCHEDULE_JOB, SHARED_QUEUE, TASK_JOB, TURN_JOB, task_lock

if TYPE_CHECKING:
    from .engine import ClusterEngine

log = logging.getLogger(__name__)


class HandedBack(Exception):
    """A turn this node took but never started, as it leaves the cluster: its job goes back to the
    shared queue, keeping its id (so its place before the session's later turns)."""


class _HandBack(BaseRetryStrategy):
    def get_retry_decision(self, *, exception: BaseException, job: Job) -> RetryDecision | None:
        if isinstance(exception, HandedBack):
            return RetryDecision(queue=SHARED_QUEUE)
        return None  # a turn is never run twice: its tools may have run


class _ClusterTurn(_SavedTurn):
    """A turn taken from the queue: on a shutdown before it started, it is handed back, not dropped."""

    handed_back = False

    async def dropped(self, reason: StopReason) -> None:
        if reason == StopReason.SHUTDOWN:
            self.handed_back = True
            return
        await super().dropped(reason)


async def _through_aborts(
    work: asyncio.Future[Any], context: JobContext, on_abort: Callable[[AbortReason], Awaitable[None]]
) -> None:
    """Await ``work``; every abort of the job meanwhile is handed to ``on_abort``, and the wait goes on."""
    while True:
        try:
            await asyncio.shield(work)
            return
        except asyncio.CancelledError:
            me = asyncio.current_task()
            if me is not None:
                me.uncancel()
            reason = context.abort_reason() or AbortReason.SHUTDOWN
            await on_abort(reason)


def register(engine: ClusterEngine) -> None:
    """The jobs of ``engine``'s node, on its procrastinate app."""
    app = engine.app
    assert engine.node is not None and engine.turns is not None
    node, turns = engine.node, engine.turns

    @app.task(name=TURN_JOB, pass_context=True, retry=_HandBack())
    async def turn_job(context: JobContext, *, turn: int, session: str, owner: int | None) -> None:
        # Noted while the turn starts (not before: a follow-up's time to its first word counts every step).
        taking = asyncio.ensure_future(engine.hooks.taken(turn=turn, session=session, node=engine.node_id))
        job = _ClusterTurn(turn, hooks=engine.turn_hooks, node=node, local=None)
        ticket: Ticket = engine.track(turns.submit(key=turn, session=session, owner=owner, job=job))

        async def on_abort(reason: AbortReason) -> None:
            if reason == AbortReason.SHUTDOWN:
                turns.stop(session, reason=StopReason.SHUTDOWN)
                return
            note = await engine.hooks.stop_note(turn)
            if not note:
                turns.stop(session)  # a person's Stop: interrupted through the protocol, the process stays
            elif not ticket.started.is_set():
                job.note = note
                await turns.withdraw(ticket)
            # (a withdrawal that came too late: the turn runs on)

        try:
            await _through_aborts(asyncio.ensure_future(ticket.wait()), context, on_abort)
        finally:
            await asyncio.shield(taking)
        if job.handed_back:
            raise HandedBack(f"turn {turn} goes back to the shared queue")

    @app.task(name=TASK_JOB, pass_context=True)
    async def task_job(context: JobContext, *, task: int) -> None:
        await engine.hooks.task_taken(task=task, node=engine.node_id)
        stop = await engine.hooks.task_stop_requested(task)
        run = asyncio.create_task(
            engine.task_hooks.run(task, engine=engine), name=f"task-{task}", context=contextvars.Context()
        )
        engine.running_tasks[task] = run
        if stop:
            engine.task_stops[task] = stop
            run.cancel()  # stopped before it began: the run handles it as it starts

        async def on_abort(reason: AbortReason) -> None:
            if reason == AbortReason.USER_REQUEST:
                engine.task_stops.setdefault(task, await engine.hooks.task_stop_requested(task) or "user")
            run.cancel()

        try:
            await _through_aborts(run, context, on_abort)
        except asyncio.CancelledError:
            pass  # the run was stopped and handled it
        finally:
            engine.running_tasks.pop(task, None)
            engine.task_stops.pop(task, None)
            await engine.schedule()  # a place is free

    @app.task(name=SCHEDULE_JOB)
    async def schedule_job() -> None:
        await fill(engine)

    @app.task(name=CLOSE_JOB)
    async def close_job(*, session: str) -> None:
        node.warm.drop(session)
        await node.warm.idle()


async def fill(engine: ClusterEngine) -> None:
    """One round of the task scheduler. Jobs of this kind hold one lock: one round at a time in the
    cluster, so counting the running tasks in the database and claiming the next is never raced."""
    hooks = engine.task_hooks
    while await engine.hooks.running_tasks() < engine.limits.max_tasks:
        hold = await hooks.hold()
        if hold is not None:
            await _note(engine, hold.note)
            await engine.schedule(seconds=hold.seconds)
            return
        await _note(engine, "")
        if await engine.hooks.claim_and_queue(functools.partial(_queue_task, engine)) is None:
            return


def _queue_task(engine: ClusterEngine, task: int) -> None:
    """A task's run as a job, on the connection (and in the transaction) that claims the task."""
    engine.tx_app.configure_task(TASK_JOB, queue=SHARED_QUEUE, lock=task_lock(task)).defer(task=task)


async def _note(engine: ClusterEngine, note: str) -> None:
    """Tell the board why starts are held, when that changed (the note itself lives in the database)."""
    if engine.board_note != note:
        engine.board_note = note
        await engine.task_hooks.note_changed(note)
