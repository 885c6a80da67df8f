"""The per-session turn queues (runtime/turns.py) over a node (runtime/node.py), with TurnJob
implementations written here that run their turn on the node, on processes that answer when told to."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
from asgiref.sync import sync_to_async

from drivers import claude
from drivers.claude import Init, LiveSpec, Permission, Result
from runtime import Done, NodeRuntime, ShutDown, Stopped, TurnOutcome
from runtime.turns import StopReason, Ticket, TurnQueue

TIMEOUT = 5


async def settle() -> None:
    """Let every ready task run until it blocks again."""
    for _ in range(10):
        await asyncio.sleep(0)


def leftover_tasks() -> list[asyncio.Task[object]]:
    return [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]


class NoQuestions:
    async def permission(self, tool, tool_input, suggestions, tool_use_id) -> Permission:
        return Permission(allow=True)

    async def before_file_tool(self, tool, tool_input, tool_use_id) -> str | None:
        return None

    async def after_file_tool(self, tool, tool_input, tool_use_id) -> None:
        return None


class Held:
    """A process whose turn answers when its job is told to finish, or stops when interrupted."""

    def __init__(self, turns: Turns, spec: LiveSpec) -> None:
        self.turns = turns
        self.spec = spec
        self.pid = None
        self.model = None
        self.mode = "default"
        self.alive = True
        self.interrupted = asyncio.Event()

    async def turn(self, prompt, handler) -> AsyncIterator[claude.Event]:
        job = self.turns.jobs[prompt]
        self.interrupted.clear()
        yield Init(session_id=self.spec.session_id, cwd="/", model="held")
        release = asyncio.ensure_future(job.release.wait())
        interrupt = asyncio.ensure_future(self.interrupted.wait())
        try:
            await asyncio.wait({release, interrupt}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            release.cancel()
            interrupt.cancel()
        yield Result(False, "success", "", self.spec.session_id, 1, 0.0, 1, 1)

    async def interrupt(self) -> bool:
        self.interrupted.set()
        return True

    async def set_model(self, model) -> None: ...

    async def set_permission_mode(self, mode) -> None: ...

    async def close(self) -> None:
        self.alive = False


class Job:
    """A turn that runs on the node until ``finish()``; what happened to it goes to ``log`` (shared by a test's jobs)."""

    def __init__(self, name: str, log: list[str], node: NodeRuntime, *, fail: bool = False) -> None:
        self.name = name
        self.log = log
        self.node = node
        self.fail = fail
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.waited = 0
        self.ran = False
        self.outcomes: list[TurnOutcome] = []
        self.dropped_with: list[StopReason] = []
        self.cancelled_with: list[StopReason | None] = []

    async def waiting(self) -> None:
        self.waited += 1
        self.log.append(f"{self.name} waits")

    async def run(self, ticket: Ticket) -> None:
        assert ticket.job is self and ticket.started.is_set()
        self.ran = True
        self.log.append(f"{self.name} starts")
        self.started.set()
        try:
            if self.fail:
                raise RuntimeError(f"{self.name} broke")
            spec = LiveSpec(cli="claude", cwd="/", session_id=ticket.session, resume=False, env={})
            outcome = await self.node.run_turn(
                spec=spec, prompt=self.name, handler=NoQuestions(), on_event=_ignore, time_limit=60
            )
            self.outcomes.append(outcome)
            self.log.append(f"{self.name} {'ends' if isinstance(outcome, Done) else type(outcome).__name__.lower()}")
        except asyncio.CancelledError:
            self.cancelled_with.append(ticket.stop_reason)
            self.log.append(f"{self.name} cancelled")
            await asyncio.sleep(0)  # cleanup that itself awaits
            raise

    async def dropped(self, reason: StopReason) -> None:
        self.dropped_with.append(reason)
        self.log.append(f"{self.name} dropped ({reason})")

    def finish(self) -> None:
        self.release.set()

    async def wait_started(self) -> None:
        async with asyncio.timeout(TIMEOUT):
            await self.started.wait()


async def _ignore(event: claude.Event) -> None:
    return None


class Turns:
    """A TurnQueue over a node of ``limit`` process slots, with the jobs submitted to it."""

    def __init__(self, limit: int) -> None:
        self.node = NodeRuntime(factory=self._start, max_processes=limit, max_warm=0)
        self.pool = self.node.processes
        self.queue = TurnQueue(self.node)
        self.log: list[str] = []
        self.keys = 0
        self.jobs: dict[str, Job] = {}

    async def _start(self, spec: LiveSpec) -> Held:
        return Held(self, spec)

    async def shutdown(self) -> None:
        await self.queue.shutdown()
        await self.node.shutdown()

    def submit(self, session: str, name: str, *, fail: bool = False) -> tuple[Ticket, Job]:
        job = self.jobs[name] = Job(name, self.log, self.node, fail=fail)
        self.keys += 1
        return self.queue.submit(key=self.keys, session=session, owner=None, job=job), job


@pytest.fixture
async def turns() -> AsyncIterator[Turns]:
    built = Turns(limit=2)
    yield built
    await built.shutdown()
    assert leftover_tasks() == []


async def done(*tickets: Ticket) -> None:
    async with asyncio.timeout(TIMEOUT):
        for ticket in tickets:
            await ticket.wait()


# ---------------------------------------------------------------------------------------
# Order and concurrency


async def test_turns_of_one_session_run_one_at_a_time_in_submission_order(turns: Turns) -> None:
    submitted = [turns.submit("s", name) for name in "abc"]
    (ta, a), (tb, b), (tc, c) = submitted
    await a.wait_started()
    await settle()
    assert not b.started.is_set() and not c.started.is_set()
    assert turns.queue.current("s") is ta and turns.queue.is_busy("s")

    a.finish()
    await b.wait_started()
    await settle()
    assert ta.done.done() and not c.started.is_set()
    b.finish()
    await c.wait_started()
    c.finish()
    await done(ta, tb, tc)
    assert turns.log == ["a starts", "a ends", "b starts", "b ends", "c starts", "c ends"]
    assert (a.waited, b.waited, c.waited) == (0, 0, 0)  # a free slot each time: nobody waited
    async with asyncio.timeout(TIMEOUT):
        await turns.queue.idle()
    assert not turns.queue.is_busy("s") and not turns.queue.has_work() and turns.queue.current("s") is None


async def test_a_turn_submitted_while_the_session_works_runs_after_it(turns: Turns) -> None:
    ta, a = turns.submit("s", "a")
    await a.wait_started()
    a.finish()
    await done(ta)
    tb, b = turns.submit("s", "b")  # the worker may still be winding down: b must not be lost
    b.finish()
    await done(tb)
    assert b.ran


async def test_different_sessions_run_concurrently_up_to_the_pool_limit(turns: Turns) -> None:
    jobs = [turns.submit(f"s{i}", f"t{i}") for i in range(4)]
    await jobs[0][1].wait_started()
    await jobs[1][1].wait_started()
    await settle()
    assert [job.started.is_set() for _, job in jobs] == [True, True, False, False]
    assert turns.pool.status().active == 2 and turns.pool.status().waiting == 2
    assert all(turns.queue.is_busy(f"s{i}") for i in range(4))

    jobs[1][1].finish()
    await jobs[2][1].wait_started()
    await settle()
    assert not jobs[3][1].started.is_set() and turns.pool.status().active == 2
    for _, job in jobs:
        job.finish()
    await done(*(ticket for ticket, _ in jobs))
    assert turns.pool.status().active == 0 and turns.pool.status().total == 4


async def test_waiting_is_called_only_when_no_slot_is_free(turns: Turns) -> None:
    first = [turns.submit(f"s{i}", f"t{i}") for i in range(2)]
    for _, job in first:
        await job.wait_started()
    tw, waiter = turns.submit("s-late", "late")
    await settle()
    assert [job.waited for _, job in first] == [0, 0]
    assert waiter.waited == 1 and turns.log[-1] == "late waits" and not waiter.started.is_set()

    first[0][1].finish()
    await waiter.wait_started()
    assert waiter.waited == 1  # told once, not again when the slot comes
    waiter.finish()
    first[1][1].finish()
    await done(tw, *(t for t, _ in first))


async def test_a_job_that_raises_does_not_stop_the_session_s_later_turns(
    turns: Turns, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="runtime.turns"):
        ta, a = turns.submit("s", "a", fail=True)
        tb, b = turns.submit("s", "b")
        await b.wait_started()
        b.finish()
        await done(ta, tb)
    assert turns.log == ["a starts", "b starts", "b ends"]
    failures = [r for r in caplog.records if r.name == "runtime.turns"]
    assert len(failures) == 1 and f"turn {ta.key} failed" in failures[0].getMessage()
    assert failures[0].exc_info is not None
    assert turns.pool.status().active == 0


async def test_a_turn_outlives_a_caller_that_stops_waiting(turns: Turns) -> None:
    ta, a = turns.submit("s", "a")
    await a.wait_started()
    caller = asyncio.create_task(ta.wait())
    await settle()
    caller.cancel()
    await settle()
    assert not ta.done.done() and a.cancelled_with == []
    a.finish()
    await done(ta)
    assert turns.log == ["a starts", "a ends"]


# ---------------------------------------------------------------------------------------
# Stop


async def test_stop_interrupts_the_running_turn_through_the_node_and_the_next_one_still_runs(turns: Turns) -> None:
    ta, a = turns.submit("s", "a")
    tb, b = turns.submit("s", "b")
    await a.wait_started()
    await settle()

    assert turns.queue.stop("s")
    await done(ta)
    assert ta.stop_reason == StopReason.STOPPED
    # Not cancelled: the node ended the turn, which says so itself.
    assert a.outcomes == [Stopped()] and a.cancelled_with == [] and a.dropped_with == []
    await b.wait_started()
    assert tb.stop_reason is None and turns.queue.current("s") is tb
    b.finish()
    await done(tb)
    assert turns.log == ["a starts", "a stopped", "b starts", "b ends"]


async def test_stop_before_the_turn_took_its_process_ends_it_without_one(turns: Turns) -> None:
    """A Stop that reaches a turn holding its slot but not yet its process (still preparing): it ends
    as stopped, and no process is started for it."""
    started: list[LiveSpec] = []
    real_start = turns.node.factory

    async def start(spec: LiveSpec) -> Held:
        started.append(spec)
        return await real_start(spec)

    turns.node.factory = start
    gate = asyncio.Event()

    class Slow(Job):
        async def run(self, ticket: Ticket) -> None:
            self.started.set()
            await gate.wait()  # preparing (the services read the database here)
            await super().run(ticket)

    job = turns.jobs["a"] = Slow("a", turns.log, turns.node)
    ticket = turns.queue.submit(key=1, session="s", owner=None, job=job)
    await job.wait_started()
    assert turns.queue.stop("s")
    gate.set()
    await done(ticket)
    assert job.outcomes == [Stopped()] and started == []


async def test_stop_with_nothing_to_stop_is_false(turns: Turns) -> None:
    assert not turns.queue.stop("nobody")
    ta, a = turns.submit("s", "a")
    await a.wait_started()
    a.finish()
    await done(ta)
    assert not turns.queue.stop("s")


async def test_stop_while_the_turn_waits_for_a_slot_drops_it(turns: Turns) -> None:
    busy = [turns.submit(f"busy{i}", f"busy{i}") for i in range(2)]
    for _, job in busy:
        await job.wait_started()
    tw, waiter = turns.submit("s", "waiter")
    tn, following = turns.submit("s", "following")
    await settle()
    assert waiter.waited == 1

    assert turns.queue.stop("s")
    await done(tw)
    assert waiter.dropped_with == [StopReason.STOPPED] and not waiter.ran
    assert tw.stop_reason == StopReason.STOPPED and not tw.started.is_set()
    await settle()
    assert turns.pool.status().waiting == 1  # only the session's next turn waits now
    busy[0][1].finish()
    await following.wait_started()
    following.finish()
    busy[1][1].finish()
    await done(tn, *(t for t, _ in busy))
    assert not waiter.ran and following.ran


async def test_stop_immediately_after_submit_drops_the_turn(turns: Turns) -> None:
    """Stopped before anything of it ran: it ends as dropped (never run), and the session goes on."""
    ta, a = turns.submit("s", "a")
    assert turns.queue.stop("s")
    await done(ta)
    assert a.dropped_with == [StopReason.STOPPED] and not a.ran
    tb, b = turns.submit("s", "b")
    b.finish()
    await done(tb)
    assert b.ran and turns.log == ["a dropped (stopped)", "b starts", "b ends"]


async def test_stop_after_the_worker_took_the_turn_but_before_its_first_step(turns: Turns) -> None:
    ta, a = turns.submit("s", "a")
    await asyncio.sleep(0)  # the worker runs once: the turn's task exists but has not started
    assert turns.queue.current("s") is ta and ta.task is not None
    assert turns.queue.stop("s")
    await done(ta)
    assert a.dropped_with == [StopReason.STOPPED] and not a.ran


# ---------------------------------------------------------------------------------------
# Withdraw


async def test_withdraw_of_a_queued_turn_drops_it_and_later_turns_still_run(turns: Turns) -> None:
    ta, a = turns.submit("s", "a")
    tb, b = turns.submit("s", "b")
    tc, c = turns.submit("s", "c")
    await a.wait_started()

    assert await turns.queue.withdraw(tb)
    assert tb.done.done() and tb.stop_reason == StopReason.WITHDRAWN
    assert b.dropped_with == [StopReason.WITHDRAWN]
    a.finish()
    await c.wait_started()
    c.finish()
    await done(ta, tc)
    assert not b.ran
    assert turns.log == ["a starts", "b dropped (withdrawn)", "a ends", "c starts", "c ends"]


async def test_withdraw_right_after_submit(turns: Turns) -> None:
    ta, a = turns.submit("s", "a")
    assert await turns.queue.withdraw(ta)
    assert a.dropped_with == [StopReason.WITHDRAWN] and ta.done.done()
    await settle()
    assert not a.ran


async def test_withdraw_of_a_turn_waiting_for_a_slot(turns: Turns) -> None:
    busy = [turns.submit(f"busy{i}", f"busy{i}") for i in range(2)]
    for _, job in busy:
        await job.wait_started()
    tw, waiter = turns.submit("s", "waiter")
    await settle()
    assert waiter.waited == 1 and turns.queue.current("s") is tw

    async with asyncio.timeout(TIMEOUT):
        assert await turns.queue.withdraw(tw)
    assert waiter.dropped_with == [StopReason.WITHDRAWN] and tw.done.done()
    for _, job in busy:
        job.finish()
    await done(*(t for t, _ in busy))
    assert not waiter.ran and turns.pool.status().waiting == 0


async def test_withdraw_of_a_started_or_ended_turn_is_false(turns: Turns) -> None:
    ta, a = turns.submit("s", "a")
    await a.wait_started()
    assert not await turns.queue.withdraw(ta)
    assert ta.stop_reason is None and not ta.done.done() and a.dropped_with == []
    a.finish()
    await done(ta)
    assert not await turns.queue.withdraw(ta)
    assert turns.log == ["a starts", "a ends"]


# ---------------------------------------------------------------------------------------
# Shutdown


async def test_shutdown_cancels_the_running_turns_and_drops_the_queued_ones() -> None:
    turns = Turns(limit=1)
    ta, a = turns.submit("s1", "a")
    tb, b = turns.submit("s1", "b")
    await a.wait_started()
    tc, c = turns.submit("s2", "c")  # waits for the pool's only slot
    await settle()
    assert c.waited == 1

    async with asyncio.timeout(TIMEOUT):
        await turns.shutdown()
    assert a.cancelled_with == [StopReason.SHUTDOWN] and ta.stop_reason == StopReason.SHUTDOWN
    assert a.dropped_with == []
    assert b.dropped_with == [StopReason.SHUTDOWN] and not b.ran
    assert c.dropped_with == [StopReason.SHUTDOWN] and not c.ran
    assert all(t.done.done() for t in (ta, tb, tc))
    assert leftover_tasks() == []
    assert not turns.queue.has_work() and turns.pool.status().active == 0


async def test_a_shutdown_lets_running_turns_end_as_shut_down_and_starts_nothing_more() -> None:
    """As the engine shuts down: the node ends the running turn (which says so itself, not cancelled),
    and neither the session's next turn nor one whose slot comes free then runs."""
    turns = Turns(limit=1)
    ta, a = turns.submit("s1", "a")
    tb, b = turns.submit("s1", "b")
    await a.wait_started()
    tc, c = turns.submit("s2", "c")  # waits for the node's only slot
    await settle()
    assert c.waited == 1

    turns.queue.close()
    turns.node.stop_all()
    async with asyncio.timeout(TIMEOUT):
        await turns.queue.shutdown(grace=TIMEOUT)
    assert a.outcomes == [ShutDown()] and a.cancelled_with == [] and a.dropped_with == []
    assert b.dropped_with == [StopReason.SHUTDOWN] and not b.ran
    assert c.dropped_with == [StopReason.SHUTDOWN] and not c.ran
    assert all(t.done.done() for t in (ta, tb, tc))
    await turns.node.shutdown()
    assert leftover_tasks() == []


async def test_shutdown_right_after_submit_drops_every_turn() -> None:
    turns = Turns(limit=2)
    submitted = [turns.submit("s1", "a"), turns.submit("s1", "b"), turns.submit("s2", "c")]
    async with asyncio.timeout(TIMEOUT):
        await turns.shutdown()
    for ticket, job in submitted:
        assert ticket.done.done(), job.name
        assert job.dropped_with == [StopReason.SHUTDOWN] and not job.ran
    assert leftover_tasks() == []


async def test_shutdown_just_after_the_worker_took_a_turn() -> None:
    """Whether it had begun or not, the turn ends told it was the shutdown, and the queued one is dropped."""
    turns = Turns(limit=1)
    ta, a = turns.submit("s", "a")
    tb, b = turns.submit("s", "b")
    await asyncio.sleep(0)  # the worker runs once: a's task exists but has not started
    assert turns.queue.current("s") is ta
    async with asyncio.timeout(TIMEOUT):
        await turns.shutdown()
    assert ta.done.done() and tb.done.done()
    assert a.cancelled_with + a.dropped_with == [StopReason.SHUTDOWN]
    assert b.dropped_with == [StopReason.SHUTDOWN] and not b.ran
    assert leftover_tasks() == []


async def test_shutdown_with_nothing_submitted() -> None:
    turns = Turns(limit=1)
    async with asyncio.timeout(TIMEOUT):
        await turns.shutdown()
        await turns.queue.idle()
    assert leftover_tasks() == []


class SyncJob(Job):
    """A turn that makes a synchronous (thread) call and ends: its worker's thread context then has
    a thread to join when it closes."""

    async def run(self, ticket: Ticket) -> None:
        self.started.set()
        await sync_to_async(lambda: None)()
        self.log.append(f"{self.name} ends")


async def test_a_turn_submitted_while_the_worker_closes_its_thread_still_runs(turns: Turns) -> None:
    # The worker of a session whose queue just emptied waits for its thread to end: a turn
    # submitted in that moment must not be left without a worker (it hung for ever once).
    for round_ in range(40):
        session = f"s{round_}"
        first = turns.queue.submit(
            key=2 * round_ + 1, session=session, owner=None, job=SyncJob("a", turns.log, turns.node)
        )
        await first.wait()
        for _ in range(round_ % 10):  # land at different steps of the worker's ending
            await asyncio.sleep(0)
        second = turns.queue.submit(
            key=2 * round_ + 2, session=session, owner=None, job=SyncJob("b", turns.log, turns.node)
        )
        await done(second)
    assert turns.log.count("b ends") == 40
