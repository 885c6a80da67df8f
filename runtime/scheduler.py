"""The task scheduler: at most ``limit`` autonomous tasks run at once.

Which task is next (priority, then age), what running one means and whether starts are held
back (a token budget) are the hooks a service hands in; this module owns the asyncio tasks:
each running task is tracked, so :meth:`TaskScheduler.shutdown` cancels them all and none is
leaked. A task's turns go through the session queues like every other turn. No Django imports.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from asgiref.sync import ThreadSensitiveContext

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Hold:
    """New starts wait: ``note`` says why (shown on the board), retried after ``seconds``."""

    note: str
    seconds: float


class SchedulerHooks(Protocol):
    async def claim_next(self, exclude: set[int]) -> int | None:
        """Mark the next queued task as running and return its id (None: nothing is queued)."""

    async def run(self, task_id: int) -> None:
        """One run of a claimed task, to its end. Cancelled to stop it (see ``stop_reason``)."""

    async def hold(self) -> Hold | None:
        """Whether new starts must wait now."""

    async def note_changed(self, note: str) -> None:
        """The scheduler's note changed (empty: nothing held back)."""


async def _own_thread[T](make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``make()`` with a thread of its own for its synchronous calls (see :mod:`runtime.turns`).

    The coroutine is made here, once the job runs: a job cancelled before its first step then
    leaves no coroutine behind that was never awaited.
    """
    async with ThreadSensitiveContext():
        return await make()


class TaskScheduler:
    def __init__(self, *, limit: int, hooks: SchedulerHooks) -> None:
        self.limit = limit
        self.hooks = hooks
        self.running: dict[int, asyncio.Task[None]] = {}
        self.stop_reasons: dict[int, str] = {}
        self.note = ""
        self._note_told = False  # the first note is told even if empty: an earlier run's may be shown
        self.started_order: list[int] = []  # for tests and the status line
        self.max_seen = 0
        self._filler: asyncio.Task[None] | None = None
        self._again = False
        self._timer: asyncio.TimerHandle | None = None
        self._others: set[asyncio.Task[Any]] = set()
        self._begun: set[asyncio.Task[None]] = set()  # runs that took their first step
        self._closed = False

    # -- scheduling -------------------------------------------------------------------
    def kick(self) -> None:
        """Start queued tasks while there is room (call after queueing one or freeing room)."""
        if self._closed:
            return  # shut down: the runs it cancels free their places, but nothing more starts
        self._again = True
        if self._filler is None or self._filler.done():
            # A fresh context: a task outlives the request that kicked it.
            self._filler = asyncio.create_task(self._fill(), name="task-scheduler", context=contextvars.Context())

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
        """A tracked background job (merge follow-ups), awaited by :meth:`idle` and :meth:`shutdown`."""
        job = asyncio.create_task(_own_thread(lambda: coro), name=name, context=contextvars.Context())
        self._others.add(job)
        job.add_done_callback(self._others.discard)
        return job

    async def _fill(self) -> None:
        while self._again:
            # A kick while the previous round's thread context closes finds this filler still
            # running: _own_thread's exit awaits, so the kick's flag is read again here.
            await _own_thread(self._fill_round)

    async def _fill_round(self) -> None:
        while self._again:
            self._again = False
            while len(self.running) < self.limit:
                hold = await self.hooks.hold()
                if hold is not None:
                    await self._set_note(hold.note)
                    self._retry_in(hold.seconds)
                    break
                await self._set_note("")
                task_id = await self.hooks.claim_next(set(self.running))
                if task_id is None:
                    break
                self.started_order.append(task_id)
                job = asyncio.create_task(
                    _own_thread(functools.partial(self._run, task_id)),
                    name=f"task-{task_id}",
                    context=contextvars.Context(),
                )
                self.running[task_id] = job
                self.max_seen = max(self.max_seen, len(self.running))
                job.add_done_callback(functools.partial(self._done, task_id))

    async def _run(self, task_id: int) -> None:
        """The hook's run. A stop (or shutdown) that came before this first step is delivered
        now, as a cancellation inside the run: a claimed task's run always gets to handle it."""
        job = asyncio.current_task()
        assert job is not None
        self._begun.add(job)
        if task_id in self.stop_reasons or self._closed:
            job.cancel()
        await self.hooks.run(task_id)

    async def _set_note(self, note: str) -> None:
        if note != self.note or not self._note_told:
            self.note = note
            self._note_told = True
            await self.hooks.note_changed(note)

    def _retry_in(self, seconds: float) -> None:
        if self._timer is None:

            def fire() -> None:
                self._timer = None
                self.kick()

            self._timer = asyncio.get_running_loop().call_later(seconds, fire)

    def _done(self, task_id: int, job: asyncio.Task[None]) -> None:
        if self.running.get(task_id) is job:
            del self.running[task_id]
        self._begun.discard(job)
        self.stop_reasons.pop(task_id, None)
        if not job.cancelled() and job.exception() is not None:
            log.error("task %s failed", task_id, exc_info=job.exception())
        try:
            self.kick()
        except RuntimeError:
            pass  # the loop is closing

    # -- control ----------------------------------------------------------------------
    def stop(self, task_id: int, reason: str) -> bool:
        """Stop a running task with a reason its run reads back (``stop_reason``)."""
        job = self.running.get(task_id)
        if job is None or job.done():
            return False
        self.stop_reasons.setdefault(task_id, reason)
        if job in self._begun:
            job.cancel()
        # Otherwise the job cancels itself as it begins (see _run): cancelled now, it would end
        # without its run ever starting, and the run could not handle the stop.
        return True

    def stop_reason(self, task_id: int) -> str | None:
        return self.stop_reasons.get(task_id)

    def is_running(self, task_id: int) -> bool:
        job = self.running.get(task_id)
        return job is not None and not job.done()

    async def settled(self, task_id: int) -> None:
        """Wait until a task's run (if any) has ended."""
        job = self.running.get(task_id)
        if job is not None:
            await asyncio.gather(job, return_exceptions=True)

    async def idle(self) -> None:
        """Wait until nothing runs and nothing more can start (tests use this)."""
        while True:
            jobs = [j for j in [self._filler, *self.running.values(), *self._others] if j is not None and not j.done()]
            if not jobs:
                return
            await asyncio.gather(*jobs, return_exceptions=True)

    async def shutdown(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        jobs = [j for j in [self._filler, *self.running.values(), *self._others] if j is not None]
        for job in jobs:
            if job in self._begun or job not in self.running.values():
                job.cancel()  # (a run yet to begin cancels itself as it does: see _run)
        await asyncio.gather(*jobs, return_exceptions=True)
