"""The task scheduler of an event loop: at most CLAUDE_MAX_TASKS tasks run at once.

Queued tasks start by priority (higher first), then by age. Each running task is an asyncio
task tracked here, so none is leaked: :meth:`TaskScheduler.shutdown` cancels them all and they
end as interrupted (resumable). A task's CLI process also takes a slot of the chat pool
(CLAUDE_MAX_CONCURRENT), which limits the CLI processes of the whole server.

An optional token budget (CLAUDE_MAX_TOKENS_PER_MINUTE) holds new starts back while the turns
that finished within the last minute used more tokens than that; the board says so.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import weakref
from datetime import timedelta

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db.models import Sum
from django.utils import timezone

from ..models import Turn
from .models import Task

log = logging.getLogger(__name__)

BUDGET_WINDOW_SECONDS = 60.0
_schedulers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, TaskScheduler] = weakref.WeakKeyDictionary()


@sync_to_async
def _tokens_in_window(seconds: float) -> tuple[int, float]:
    """Tokens of the turns that finished within the window, and when the oldest leaves it."""
    since = timezone.now() - timedelta(seconds=seconds)
    recent = Turn.objects.filter(finished_at__gte=since)
    totals = recent.aggregate(i=Sum("input_tokens"), o=Sum("output_tokens"))
    oldest = recent.order_by("finished_at").values_list("finished_at", flat=True).first()
    wait = max(1.0, (oldest - since).total_seconds()) if oldest else 1.0
    return (totals["i"] or 0) + (totals["o"] or 0), wait


@sync_to_async
def _claim_next(exclude: set[int]) -> int | None:
    """Mark the next queued task as running (so no second scheduler takes it) and return its id."""
    for task_id in Task.objects.filter(status=Task.Status.QUEUED).exclude(pk__in=exclude).in_queue_order().values_list("pk", flat=True)[:20]:
        if Task.objects.filter(pk=task_id, status=Task.Status.QUEUED).update(status=Task.Status.RUNNING, reason=""):
            return task_id
    return None


class TurnHost:
    """What :func:`chat.turns.execute_turn` needs from a runner: the shared pool and stop requests."""

    def __init__(self, scheduler: TaskScheduler, task_id: int) -> None:
        from ..runner import get_runner

        self.pool = get_runner().pool
        self._scheduler = scheduler
        self._task_id = task_id

    def stop_was_requested(self, turn_id: int) -> bool:
        return self._task_id in self._scheduler.stop_reasons


class TaskScheduler:
    def __init__(self, *, limit: int) -> None:
        self.limit = limit
        self.running: dict[int, asyncio.Task[None]] = {}
        self.stop_reasons: dict[int, str] = {}
        self.note = ""
        self.started_order: list[int] = []  # for tests and the status line
        self.max_seen = 0
        self._filler: asyncio.Task[None] | None = None
        self._again = False
        self._timer: asyncio.TimerHandle | None = None
        self._others: set[asyncio.Task] = set()

    # -- scheduling -------------------------------------------------------------------
    def kick(self) -> None:
        self._again = True
        if self._filler is None or self._filler.done():
            # A fresh context: a task outlives the request that kicked it (and asgiref's
            # per-request executor, which sync_to_async would otherwise keep using).
            self._filler = asyncio.create_task(self._fill(), name="task-scheduler", context=contextvars.Context())

    def spawn(self, coro, *, name: str) -> asyncio.Task:
        """A tracked background job (merge follow-ups), awaited by :meth:`idle` and :meth:`shutdown`."""
        job = asyncio.create_task(coro, name=name, context=contextvars.Context())
        self._others.add(job)
        job.add_done_callback(self._others.discard)
        return job

    async def _fill(self) -> None:
        from . import services

        while self._again:
            self._again = False
            while len(self.running) < self.limit:
                budget = settings.CLAUDE_MAX_TOKENS_PER_MINUTE
                if budget:
                    used, wait = await _tokens_in_window(BUDGET_WINDOW_SECONDS)
                    if used >= budget:
                        note = (f"Token budget reached: {used:,} tokens in the last minute (limit {budget:,} a minute, "
                                f"CLAUDE_MAX_TOKENS_PER_MINUTE). Queued tasks start again in about {wait:.0f} s.")
                        if await self._has_queued():
                            await self._set_note(note)
                        self._retry_in(wait)
                        break
                task_id = await _claim_next(set(self.running))
                if task_id is None:
                    break
                await self._set_note("")
                self.started_order.append(task_id)
                job = asyncio.create_task(services.run_task(task_id=task_id, scheduler=self), name=f"task-{task_id}")
                self.running[task_id] = job
                self.max_seen = max(self.max_seen, len(self.running))
                job.add_done_callback(lambda j, tid=task_id: self._done(tid, j))

    @staticmethod
    @sync_to_async
    def _has_queued_sync() -> bool:
        return Task.objects.filter(status=Task.Status.QUEUED).exists()

    async def _has_queued(self) -> bool:
        return await self._has_queued_sync()

    async def _set_note(self, note: str) -> None:
        from . import board  # board reads the schedulers: imported here, not at the top

        if note != self.note:
            self.note = note
            await board.broadcast_board(note=note)

    def _retry_in(self, seconds: float) -> None:
        if self._timer is None:
            def fire() -> None:
                self._timer = None
                self.kick()

            self._timer = asyncio.get_running_loop().call_later(seconds, fire)

    def _done(self, task_id: int, job: asyncio.Task[None]) -> None:
        if self.running.get(task_id) is job:
            del self.running[task_id]
        self.stop_reasons.pop(task_id, None)
        if not job.cancelled() and job.exception() is not None:
            log.error("task %s failed", task_id, exc_info=job.exception())
        try:
            self.kick()
        except RuntimeError:
            pass  # the loop is closing

    # -- control ----------------------------------------------------------------------
    def stop(self, task_id: int, reason: str) -> bool:
        """Stop a running task: reason "user" (pause), "terminate" or "conflict"."""
        job = self.running.get(task_id)
        if job is None or job.done():
            return False
        self.stop_reasons.setdefault(task_id, reason)
        job.cancel()
        return True

    def is_running(self, task_id: int) -> bool:
        job = self.running.get(task_id)
        return job is not None and not job.done()

    async def idle(self) -> None:
        """Wait until nothing runs and nothing more can start (tests use this)."""
        while True:
            jobs = [j for j in [self._filler, *self.running.values(), *self._others] if j is not None and not j.done()]
            if not jobs:
                return
            await asyncio.gather(*jobs, return_exceptions=True)

    async def shutdown(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        jobs = [j for j in [self._filler, *self.running.values(), *self._others] if j is not None]
        for job in jobs:
            job.cancel()
        await asyncio.gather(*jobs, return_exceptions=True)


def get_scheduler() -> TaskScheduler:
    """The scheduler of the running event loop; made (and kicked for queued tasks) on first use."""
    loop = asyncio.get_running_loop()
    scheduler = _schedulers.get(loop)
    if scheduler is None:
        scheduler = TaskScheduler(limit=settings.CLAUDE_MAX_TASKS)
        _schedulers[loop] = scheduler
        scheduler.kick()
    return scheduler


def start_when_served() -> None:
    """Start the tasks a stopped server left queued as soon as Daphne serves, not on the first request.

    Daphne sends no ASGI lifespan events. Its Twisted reactor runs on the asyncio loop that serves
    the requests; a reactor that never runs (any other server, the tests) starts nothing here."""
    from twisted.internet import reactor

    # Startup triggers fire before the loop runs; callLater(0) runs on it.
    reactor.callWhenRunning(lambda: reactor.callLater(0, get_scheduler))
