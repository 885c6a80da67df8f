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
