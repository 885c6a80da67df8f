"""The task scheduler (runtime/scheduler.py) driven through its TaskHooks protocol, implemented here."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable

import pytest

from runtime.scheduler import Hold, TaskScheduler

TIMEOUT = 5


async def settle() -> None:
    """Let every ready task run until it blocks again."""
    for _ in range(10):
        await asyncio.sleep(0)


class Hooks:
    """Tasks queued in ``queue``; each run waits for ``finish(id)``; what the scheduler did is recorded."""

    def __init__(self) -> None:
        self.scheduler: TaskScheduler | None = None
        self.queue: list[int] = []
        self.excludes: list[set[int]] = []
        self.hold_now: Hold | None = None
        self.hold_calls = 0
        self.on_hold: Callable[[int], None] | None = None
        self.hold_called = asyncio.Event()
        self.notes: list[str] = []
        self.started: defaultdict[int, asyncio.Event] = defaultdict(asyncio.Event)
        self.release: defaultdict[int, asyncio.Event] = defaultdict(asyncio.Event)
        self.finished: list[int] = []
        self.cancelled: dict[int, str | None] = {}
        self.failing: set[int] = set()
        self.inside = 0
        self.peak = 0

    async def claim_next(self, exclude: set[int]) -> int | None:
        self.excludes.append(set(exclude))
        for task_id in self.queue:
            if task_id not in exclude:
                self.queue.remove(task_id)
                return task_id
        return None

    async def run(self, task_id: int) -> None:
        assert self.scheduler is not None
        self.inside += 1
        self.peak = max(self.peak, self.inside)
        self.started[task_id].set()
        try:
            if task_id in self.failing:
                raise RuntimeError(f"task {task_id} broke")
            await self.release[task_id].wait()
            self.finished.append(task_id)
        except asyncio.CancelledError:
            self.cancelled[task_id] = self.scheduler.stop_reason(task_id)
            await asyncio.sleep(0)  # cleanup that itself awaits
            raise
        finally:
            self.inside -= 1

    async def hold(self) -> Hold | None:
        self.hold_calls += 1
        self.hold_called.set()
        if self.on_hold is not None:
            self.on_hold(self.hold_calls)
        return self.hold_now

    async def note_changed(self, note: str) -> None:
        self.notes.append(note)

    def finish(self, task_id: int) -> None:
        self.release[task_id].set()

    async def wait_started(self, *task_ids: int) -> None:
        async with asyncio.timeout(TIMEOUT):
            for task_id in task_ids:
                await self.started[task_id].wait()

    async def next_hold_call(self) -> None:
        self.hold_called.clear()
        async with asyncio.timeout(TIMEOUT):
            await self.hold_called.wait()


@pytest.fixture
def hooks() -> Hooks:
    return Hooks()


@pytest.fixture
async def scheduler(hooks: Hooks) -> AsyncIterator[TaskScheduler]:
    scheduler = TaskScheduler(limit=2, hooks=hooks)
    hooks.scheduler = scheduler
    yield scheduler
    await scheduler.shutdown()
    assert not [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]


def started(hooks: Hooks) -> list[int]:
    return sorted(task_id for task_id, event in hooks.started.items() if event.is_set())


async def test_never_more_than_limit_run_at_once(scheduler: TaskScheduler, hooks: Hooks) -> None:
    hooks.queue = [1, 2, 3, 4, 5]
    scheduler.kick()
    await hooks.wait_started(1, 2)
    await settle()
    assert started(hooks) == [1, 2] and set(scheduler.running) == {1, 2}

    for done, following in ((1, 3), (2, 4), (3, 5)):
        hooks.finish(done)
        await hooks.wait_started(following)
        await settle()
        assert len(scheduler.running) == 2 and hooks.inside == 2
    hooks.finish(4)
    hooks.finish(5)
    async with asyncio.timeout(TIMEOUT):
        await scheduler.idle()
    assert hooks.finished == [1, 2, 3, 4, 5]
    assert hooks.peak == 2 and scheduler.max_seen == 2
    assert scheduler.running == {}


async def test_tasks_start_in_the_order_claim_next_gives(scheduler: TaskScheduler, hooks: Hooks) -> None:
    scheduler.limit = 1
    hooks.queue = [5, 3, 9]
    scheduler.kick()
    for task_id in (5, 3, 9):
        await hooks.wait_started(task_id)
        hooks.finish(task_id)
    async with asyncio.timeout(TIMEOUT):
        await scheduler.idle()
    assert scheduler.started_order == [5, 3, 9]
    assert hooks.finished == [5, 3, 9]


async def test_claim_next_is_told_which_tasks_run(scheduler: TaskScheduler, hooks: Hooks) -> None:
    hooks.queue = [1]
    scheduler.kick()
    await hooks.wait_started(1)
    hooks.queue = [1, 2]  # 1 queued again while it runs (a follow-up): not started twice
    scheduler.kick()
    await hooks.wait_started(2)
    assert {1} in hooks.excludes
    assert scheduler.started_order == [1, 2]
    hooks.finish(1)
    hooks.finish(2)


async def test_kicks_while_full_start_the_next_when_one_finishes(scheduler: TaskScheduler, hooks: Hooks) -> None:
    hooks.queue = [1, 2]
    scheduler.kick()
    await hooks.wait_started(1, 2)
    hooks.queue.append(3)
    for _ in range(3):
        scheduler.kick()
    await settle()
    assert started(hooks) == [1, 2] and hooks.queue == [3]

    hooks.finish(2)
    await hooks.wait_started(3)
    assert scheduler.started_order == [1, 2, 3]
    hooks.finish(1)
    hooks.finish(3)
    async with asyncio.timeout(TIMEOUT):
        await scheduler.idle()


async def test_many_kicks_claim_each_task_once(scheduler: TaskScheduler, hooks: Hooks) -> None:
    scheduler.limit = 10
    hooks.queue = list(range(1, 8))
    for _ in range(20):
        scheduler.kick()
    await hooks.wait_started(*range(1, 8))
    await settle()
    assert sorted(scheduler.started_order) == list(range(1, 8))
    for task_id in range(1, 8):
        hooks.finish(task_id)
    async with asyncio.timeout(TIMEOUT):
        await scheduler.idle()


async def test_stop_cancels_a_run_which_reads_the_reason(scheduler: TaskScheduler, hooks: Hooks) -> None:
    hooks.queue = [1, 2]
    scheduler.kick()
    await hooks.wait_started(1, 2)
    assert scheduler.is_running(1)

    assert scheduler.stop(1, "user")
    assert scheduler.stop(1, "terminate")  # still stopping: the first reason stands
    async with asyncio.timeout(TIMEOUT):
        await scheduler.settled(1)
    assert hooks.cancelled == {1: "user"}
    assert not scheduler.is_running(1) and scheduler.is_running(2)
    assert scheduler.stop_reason(1) is None  # forgotten once the run ended
    assert not scheduler.stop(1, "user")  # nothing left to stop
    assert not scheduler.stop(99, "user")
    hooks.finish(2)


async def test_stop_before_the_run_took_its_first_step_still_reaches_the_run(
    scheduler: TaskScheduler, hooks: Hooks
) -> None:
    """The run is told (cancelled, with the reason) even when it is stopped the moment it was claimed."""
    hooks.queue = [1]

    def stop_the_claimed_one(calls: int) -> None:
        if calls == 2:  # right after 1 was claimed and its job created, before that job ran
            assert scheduler.stop(1, "user")

    hooks.on_hold = stop_the_claimed_one
    scheduler.kick()
    async with asyncio.timeout(TIMEOUT):
        await scheduler.idle()
    assert hooks.started[1].is_set()
    assert hooks.cancelled == {1: "user"}
    assert hooks.finished == [] and scheduler.running == {}


async def test_a_hold_sets_the_note_once_and_retries_after_its_seconds(scheduler: TaskScheduler, hooks: Hooks) -> None:
    hooks.queue = [1]
    hooks.hold_now = Hold(note="Token budget used up: starts wait", seconds=0.2)
    began = time.monotonic()
    scheduler.kick()
    await hooks.next_hold_call()
    await settle()
    assert scheduler.note == "Token budget used up: starts wait"
    assert hooks.notes == ["Token budget used up: starts wait"]
    assert started(hooks) == [] and hooks.queue == [1]

    scheduler.kick()  # kicked again while held: same note, not told again
    await settle()
    assert hooks.notes == ["Token budget used up: starts wait"] and started(hooks) == []

    hooks.hold_now = None
    await hooks.wait_started(1)
    assert time.monotonic() - began >= 0.2 * 0.9
    assert hooks.notes == ["Token budget used up: starts wait", ""]
    assert scheduler.note == ""
    hooks.finish(1)


async def test_a_hold_keeps_being_retried_until_it_lifts(scheduler: TaskScheduler, hooks: Hooks) -> None:
    hooks.queue = [1]
    hooks.hold_now = Hold(note="held", seconds=0.01)
    scheduler.kick()
    for _ in range(3):
        await hooks.next_hold_call()  # no kick needed: the scheduler retries by itself
    assert started(hooks) == []
    hooks.hold_now = Hold(note="held for another reason", seconds=0.01)
    await hooks.next_hold_call()
    await hooks.next_hold_call()
    hooks.hold_now = None
    await hooks.wait_started(1)
    assert hooks.notes == ["held", "held for another reason", ""]
    hooks.finish(1)


async def test_the_note_clears_when_a_hold_lifts_with_nothing_queued(scheduler: TaskScheduler, hooks: Hooks) -> None:
    hooks.hold_now = Hold(note="held", seconds=0.01)
    scheduler.kick()
    await hooks.next_hold_call()
    hooks.hold_now = None
    await hooks.next_hold_call()
    await settle()
    assert scheduler.note == ""
    assert hooks.notes == ["held", ""]


async def test_a_run_that_raises_is_logged_and_the_scheduler_goes_on(
    scheduler: TaskScheduler, hooks: Hooks, caplog: pytest.LogCaptureFixture
) -> None:
    scheduler.limit = 1
    hooks.failing = {1}
    hooks.queue = [1, 2]
    with caplog.at_level(logging.ERROR, logger="runtime.scheduler"):
        scheduler.kick()
        await hooks.wait_started(1, 2)
    failures = [r for r in caplog.records if r.name == "runtime.scheduler"]
    assert len(failures) == 1 and "task 1 failed" in failures[0].getMessage()
    assert failures[0].exc_info is not None and "task 1 broke" in str(failures[0].exc_info[1])
    assert not scheduler.is_running(1)

    hooks.finish(2)
    hooks.queue = [3]
    scheduler.kick()
    await hooks.wait_started(3)
    hooks.finish(3)
    async with asyncio.timeout(TIMEOUT):
        await scheduler.idle()
    assert hooks.finished == [2, 3]


async def test_settled_waits_for_the_run(scheduler: TaskScheduler, hooks: Hooks) -> None:
    async with asyncio.timeout(TIMEOUT):
        await scheduler.settled(1)  # not running: at once
    hooks.queue = [1]
    scheduler.kick()
    await hooks.wait_started(1)
    waiter = asyncio.create_task(scheduler.settled(1))
    await settle()
    assert not waiter.done()
    hooks.finish(1)
    async with asyncio.timeout(TIMEOUT):
        await waiter
    assert hooks.finished == [1]


async def test_settled_after_a_failure_does_not_raise(scheduler: TaskScheduler, hooks: Hooks) -> None:
    hooks.failing = {1}
    hooks.queue = [1]
    scheduler.kick()
    await hooks.wait_started(1)
    async with asyncio.timeout(TIMEOUT):
        await scheduler.settled(1)


async def test_spawned_jobs_are_awaited_by_idle(scheduler: TaskScheduler, hooks: Hooks) -> None:
    go = asyncio.Event()
    ran: list[str] = []

    async def follow_up() -> None:
        await go.wait()
        ran.append("follow-up")

    job = scheduler.spawn(follow_up(), name="task-rebase-1")
    idle = asyncio.create_task(scheduler.idle())
    await settle()
    assert not idle.done()
    go.set()
    async with asyncio.timeout(TIMEOUT):
        await idle
    assert ran == ["follow-up"] and job.done() and job.get_name() == "task-rebase-1"


async def test_idle_waits_for_runs_and_what_they_let_start(scheduler: TaskScheduler, hooks: Hooks) -> None:
    scheduler.limit = 1
    hooks.queue = [1, 2]
    scheduler.kick()
    await hooks.wait_started(1)
    idle = asyncio.create_task(scheduler.idle())
    hooks.finish(1)
    await hooks.wait_started(2)
    assert not idle.done()
    hooks.finish(2)
    async with asyncio.timeout(TIMEOUT):
        await idle
    assert hooks.finished == [1, 2]


async def test_shutdown_cancels_runs_spawned_jobs_and_the_retry(hooks: Hooks) -> None:
    scheduler = TaskScheduler(limit=2, hooks=hooks)
    hooks.scheduler = scheduler
    hooks.queue = [1, 2]
    scheduler.kick()
    await hooks.wait_started(1, 2)
    cancelled: list[str] = []

    async def forever() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append("spawned")
            raise

    job = scheduler.spawn(forever(), name="follow-up")
    hooks.queue = [3]
    hooks.hold_now = Hold(note="held", seconds=0.05)
    scheduler.kick()
    await settle()

    async with asyncio.timeout(TIMEOUT):
        await scheduler.shutdown()
    assert hooks.cancelled == {1: None, 2: None}  # no stop reason: the server is stopping
    assert cancelled == ["spawned"] and job.cancelled()
    assert scheduler.running == {}
    calls = hooks.hold_calls
    await asyncio.sleep(0.1)  # the retry timer was cancelled too
    assert hooks.hold_calls == calls and started(hooks) == [1, 2]
    assert not [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]


async def test_nothing_starts_after_shutdown(hooks: Hooks) -> None:
    """The runs ended by shutdown free their places, but nothing more is claimed, kicked or not."""
    scheduler = TaskScheduler(limit=1, hooks=hooks)
    hooks.scheduler = scheduler
    hooks.queue = [1, 2]
    scheduler.kick()
    await hooks.wait_started(1)

    async with asyncio.timeout(TIMEOUT):
        await scheduler.shutdown()
    scheduler.kick()
    await settle()
    assert started(hooks) == [1] and hooks.queue == [2]
    assert scheduler.started_order == [1] and scheduler.running == {}
    assert not [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]


async def test_shutdown_right_after_a_kick_claims_nothing(hooks: Hooks) -> None:
    scheduler = TaskScheduler(limit=2, hooks=hooks)
    hooks.scheduler = scheduler
    hooks.queue = [1]
    scheduler.kick()
    async with asyncio.timeout(TIMEOUT):
        await scheduler.shutdown()
    assert hooks.excludes == [] and hooks.queue == [1] and started(hooks) == []
