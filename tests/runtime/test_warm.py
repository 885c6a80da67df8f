"""The warm pool (runtime/warm.py): its waits end, whatever the order of the loop's callbacks.

The pool's work with the real CLI is shown in tests/chat/services/test_execution.py; these cases
need a close that ends at a chosen step, which a real process cannot give."""

from __future__ import annotations

import asyncio

import pytest

from runtime.warm import WarmPool


class QuickProcess:
    """A process whose close ends at its first step."""

    def __init__(self) -> None:
        self.closed = False

    @property
    def alive(self) -> bool:
        return not self.closed

    async def close(self) -> None:
        self.closed = True


async def started(pool: WarmPool, key: str) -> QuickProcess:
    async def start() -> QuickProcess:
        return QuickProcess()

    process = await pool.take(key, fingerprint="same", start=start)
    await pool.give_back(key)
    return process


@pytest.mark.timeout(20)
async def test_waiting_for_closes_just_finished_returns():
    # A close that finishes in the step before idle() is called leaves its done callback queued
    # behind the caller: idle() must yield to it, not spin on the finished task for ever.
    pool = WarmPool(max_warm=4, idle_seconds=600)
    process = await started(pool, "a")
    pool.drop("a")
    await asyncio.sleep(0)  # the close runs and finishes; its done callback comes after this step
    await pool.idle()
    assert process.closed and len(pool) == 0


@pytest.mark.timeout(20)
async def test_shutdown_closes_every_warm_process():
    pool = WarmPool(max_warm=4, idle_seconds=600)
    processes = [await started(pool, key) for key in "abc"]
    await pool.shutdown()
    assert all(p.closed for p in processes) and len(pool) == 0


class SlowProcess(QuickProcess):
    """A process whose close takes a few of the loop's steps (a CLI flushing its transcript)."""

    async def close(self) -> None:
        for _ in range(5):
            await asyncio.sleep(0)
        self.closed = True


class ClosingProcess(QuickProcess):
    """A process whose close ends when the test lets it."""

    def __init__(self) -> None:
        super().__init__()
        self.may_end = asyncio.Event()

    async def close(self) -> None:
        await self.may_end.wait()
        self.closed = True


@pytest.mark.timeout(20)
async def test_close_and_wait_from_a_thread_returns_once_the_process_has_exited():
    pool = WarmPool(max_warm=4, idle_seconds=600)

    async def start() -> SlowProcess:
        return SlowProcess()

    process = await pool.take("a", fingerprint="same", start=start)
    await pool.give_back("a")
    other = await started(pool, "b")

    closed_when_back = await asyncio.to_thread(lambda: (pool.close_and_wait("a", timeout=10), process.closed)[1])
    await asyncio.to_thread(pool.close_and_wait, "unknown", timeout=10)  # none: returns at once

    assert closed_when_back and len(pool) == 1 and not other.closed
    pool.close_and_wait("b", timeout=10)  # on the loop itself: the close is only started
    await pool.idle()
    assert other.closed and len(pool) == 0


@pytest.mark.parametrize("max_warm", [0, 1])
async def test_a_process_with_no_room_to_stay_warm_is_closed_before_its_turn_gives_back(max_warm):
    """The turn holds its pool slot until give_back returns: while the process it leaves still
    closes, no other turn may start one, or more processes than the limit would exist at once."""
    pool = WarmPool(max_warm=max_warm, idle_seconds=600)
    busy, leaving = QuickProcess(), ClosingProcess()
    for key, process in (("leaving", leaving), ("busy", busy)):
        await pool.take(key, fingerprint="same", start=lambda process=process: _ready(process))
    # "busy" still runs its turn, so "leaving" is the one over max_warm.
    giving_back = asyncio.create_task(pool.give_back("leaving"))
    for _ in range(20):
        await asyncio.sleep(0)
    assert not giving_back.done() and not leaving.closed
    leaving.may_end.set()
    await giving_back
    assert leaving.closed and not busy.closed


async def _ready[P](process: P) -> P:
    return process


# -- processes started ahead of a turn ---------------------------------------------------------


def ahead(pool: WarmPool, key: str, owner: str, *, unused: float = 60.0, start=None) -> asyncio.Task[None] | None:
    async def quick() -> QuickProcess:
        return QuickProcess()

    return pool.prewarm(key, fingerprint="same", start=start or quick, owner=owner, unused_seconds=unused)


@pytest.mark.timeout(20)
async def test_a_member_starts_at_most_two_ahead_and_no_more_than_their_share_of_a_full_pool():
    pool = WarmPool(max_warm=4, idle_seconds=600)
    assert ahead(pool, "a1", "ann") and ahead(pool, "a2", "ann")
    assert ahead(pool, "a3", "ann") is None  # two unused ones at most
    await asyncio.sleep(0.01)
    for key in ("b1", "b2"):  # another member's turns fill the pool
        await started(pool, key)
    assert len(pool) == 4
    # Full: a member within their share (4 // 2 members = 2) may take an idle place; ann has 2 already.
    await pool.take("a1", fingerprint="same", start=QuickProcess)  # (a used one no longer counts as ahead)
    await pool.give_back("a1")
    assert ahead(pool, "a4", "ann") is None
    assert ahead(pool, "c1", "cat") is not None  # cat has none: room is made by closing the oldest idle one
    await asyncio.sleep(0.01)
    assert len(pool) == 4 and pool.has("c1")


@pytest.mark.timeout(20)
async def test_a_turn_waits_for_the_process_being_started_for_it_and_takes_it():
    pool = WarmPool(max_warm=4, idle_seconds=600)
    may_start = asyncio.Event()
    made: list[QuickProcess] = []

    async def slow() -> QuickProcess:
        await may_start.wait()
        made.append(QuickProcess())
        return made[-1]

    assert ahead(pool, "a", "ann", start=slow)

    async def other() -> QuickProcess:
        raise AssertionError("a second process was started")

    taking = asyncio.ensure_future(pool.take("a", fingerprint="same", start=other))
    await asyncio.sleep(0.01)
    assert not taking.done()
    may_start.set()
    assert await taking is made[0] and pool.prewarm_used == 1
    await pool.give_back("a")
    await asyncio.sleep(0.05)
    assert not made[0].closed  # a used one stays warm as any other


@pytest.mark.timeout(20)
async def test_one_started_ahead_is_closed_unused_and_one_dropped_while_starting_is_closed_once_up():
    pool = WarmPool(max_warm=4, idle_seconds=600)
    made: list[QuickProcess] = []

    async def start() -> QuickProcess:
        made.append(QuickProcess())
        return made[-1]

    assert ahead(pool, "a", "ann", unused=0.05, start=start)
    await asyncio.sleep(0.2)
    await pool.idle()
    assert made[0].closed and not pool.has("a")

    assert ahead(pool, "b", "ann", start=start)
    pool.drop("b")  # the chat was deleted while its process started
    await asyncio.sleep(0.05)
    await pool.idle()
    assert made[1].closed and not pool.has("b")
