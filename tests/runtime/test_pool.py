"""The counting limit on CLI processes (chat/pool.py)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import pytest

from runtime.pool import Pool, PoolStatus


async def settle() -> None:
    """Let every ready task run until it blocks again."""
    for _ in range(5):
        await asyncio.sleep(0)


class Holder:
    """A task that takes a slot and keeps it until told to let go."""

    def __init__(self, pool: Pool, name: str = "", order: list[str] | None = None) -> None:
        self.pool = pool
        self.name = name
        self.order = order
        self.waited = 0
        self.holding = asyncio.Event()
        self.release = asyncio.Event()
        self.task = asyncio.create_task(self._run())

    def _on_wait(self) -> None:
        self.waited += 1

    async def _run(self) -> None:
        async with self.pool.slot(on_wait=self._on_wait):
            if self.order is not None:
                self.order.append(self.name)
            self.holding.set()
            await self.release.wait()

    async def finish(self) -> None:
        self.release.set()
        await self.task


async def held_with_one_waiting() -> tuple[Pool, Holder, Holder]:
    """A pool of one slot, held, with one task queued for it."""
    pool = Pool(1)
    holder = Holder(pool)
    await holder.holding.wait()
    waiter = Holder(pool)
    await settle()
    return pool, holder, waiter


async def test_a_slot_is_given_back_after_normal_use() -> None:
    pool = Pool(2)
    assert pool.status() == PoolStatus(active=0, limit=2, waiting=0, total=0)
    async with pool.slot():
        assert pool.status() == PoolStatus(active=1, limit=2, waiting=0, total=1)
    assert pool.status() == PoolStatus(active=0, limit=2, waiting=0, total=1)


async def test_a_slot_is_given_back_when_the_holder_raises() -> None:
    pool = Pool(1)
    with pytest.raises(RuntimeError):
        async with pool.slot():
            raise RuntimeError("the turn failed")
    assert pool.status().active == 0
    # The one slot is free again: taking it must not wait.
    waited: list[bool] = []
    async with asyncio.timeout(1):
        async with pool.slot(on_wait=lambda: waited.append(True)):
            pass
    assert waited == []


async def test_a_slot_is_given_back_when_the_holder_is_cancelled() -> None:
    pool, holder, waiter = await held_with_one_waiting()
    assert pool.status() == PoolStatus(active=1, limit=1, waiting=1, total=2)

    holder.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await holder.task
    async with asyncio.timeout(1):
        await waiter.holding.wait()
    assert pool.status() == PoolStatus(active=1, limit=1, waiting=0, total=2)
    await waiter.finish()
    assert pool.status().active == 0


async def test_a_waiter_that_is_cancelled_takes_no_slot_and_leaves_the_queue() -> None:
    pool, holder, waiter = await held_with_one_waiting()
    assert pool.status().waiting == 1 and waiter.waited == 1

    waiter.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter.task
    assert pool.status() == PoolStatus(active=1, limit=1, waiting=0, total=2)
    assert not waiter.holding.is_set()

    await holder.finish()
    assert pool.status().active == 0
    # Nothing was lost or double-counted: the single slot is there, and only one.
    async with asyncio.timeout(1):
        async with pool.slot():
            second = Holder(pool)
            await settle()
            assert not second.holding.is_set() and second.waited == 1
    async with asyncio.timeout(1):
        await second.finish()


async def test_a_waiter_cancelled_just_as_its_slot_came_free_does_not_lose_the_slot() -> None:
    pool = Pool(1)
    async with pool.slot():
        waiter = Holder(pool)
        await settle()
    # Released just now, with no await since: the slot is promised to the waiter, which has not run.
    waiter.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter.task
    assert not waiter.holding.is_set()

    assert pool.status() == PoolStatus(active=0, limit=1, waiting=0, total=2)
    async with asyncio.timeout(1):
        async with pool.slot():
            pass


async def test_the_limit_holds_under_many_concurrent_holders() -> None:
    pool = Pool(3)
    inside = 0
    peak = 0
    peak_reported = 0
    rng = random.Random(7)

    async def turn() -> None:
        nonlocal inside, peak, peak_reported
        async with pool.slot():
            inside += 1
            peak = max(peak, inside)
            peak_reported = max(peak_reported, pool.status().active)
            await asyncio.sleep(rng.uniform(0, 0.01))
            inside -= 1

    async with asyncio.timeout(10):
        await asyncio.gather(*(turn() for _ in range(40)))
    assert peak == 3
    assert peak_reported == 3
    assert pool.status() == PoolStatus(active=0, limit=3, waiting=0, total=40)


async def test_waiting_and_total_count_what_is_queued() -> None:
    pool = Pool(2)
    holders = [Holder(pool, str(i)) for i in range(5)]
    await settle()
    assert pool.status() == PoolStatus(active=2, limit=2, waiting=3, total=5)

    await holders[0].finish()
    await settle()
    assert pool.status() == PoolStatus(active=2, limit=2, waiting=2, total=5)

    for holder in holders[1:]:
        await holder.finish()
    assert pool.status() == PoolStatus(active=0, limit=2, waiting=0, total=5)


async def test_on_wait_is_called_only_for_those_that_really_wait() -> None:
    pool = Pool(2)
    first, second = Holder(pool), Holder(pool)
    await settle()
    assert (first.waited, second.waited) == (0, 0)

    third = Holder(pool)
    await settle()
    assert third.waited == 1 and not third.holding.is_set()

    await first.finish()
    await third.holding.wait()
    assert third.waited == 1  # once, not again when the slot comes

    await second.finish()
    await third.finish()
    late = Holder(pool)
    await late.holding.wait()
    assert late.waited == 0
    await late.finish()


async def test_an_async_on_wait_is_awaited() -> None:
    pool = Pool(1)
    told: list[str] = []

    async def on_wait() -> None:
        await asyncio.sleep(0)
        told.append("waiting")

    holder = Holder(pool)
    await holder.holding.wait()
    waiter = asyncio.create_task(_take(pool, on_wait))
    await settle()
    assert told == ["waiting"]
    await holder.finish()
    async with asyncio.timeout(1):
        await waiter
    assert pool.status() == PoolStatus(active=0, limit=1, waiting=0, total=2)


async def _take(pool: Pool, on_wait: Callable[[], object]) -> None:
    async with pool.slot(on_wait=on_wait):
        pass


async def test_an_on_wait_that_fails_leaks_nothing() -> None:
    pool = Pool(1)
    holder = Holder(pool)
    await holder.holding.wait()

    def on_wait() -> None:
        raise RuntimeError("could not record the waiting state")

    with pytest.raises(RuntimeError):
        async with pool.slot(on_wait=on_wait):
            pass
    assert pool.status() == PoolStatus(active=1, limit=1, waiting=0, total=2)
    await holder.finish()
    async with asyncio.timeout(1):
        async with pool.slot():
            pass


async def test_waiters_get_their_slot_in_the_order_they_came() -> None:
    pool = Pool(1)
    order: list[str] = []
    holders = [Holder(pool, str(i), order) for i in range(4)]
    await settle()
    holders[0].release.set()
    await holders[0].task  # the slot now belongs to "1", which has not run yet
    # A newcomer at that very moment queues behind the others instead of taking the slot.
    late = Holder(pool, "late", order)
    await settle()
    assert late.waited == 1
    for holder in [*holders[1:], late]:
        async with asyncio.timeout(1):
            await holder.holding.wait()
        await holder.finish()
    assert order == ["0", "1", "2", "3", "late"]
    assert pool.status() == PoolStatus(active=0, limit=1, waiting=0, total=5)


async def test_a_full_pool_serves_owners_in_turn_not_in_arrival_order() -> None:
    """One member's queue of long turns cannot starve another member's single turn."""
    pool = Pool(1)
    order: list[str] = []
    first = Holder(pool, "a0", order)
    await first.holding.wait()

    async def take(owner: str, name: str, release: asyncio.Event) -> None:
        async with pool.slot(owner=owner):
            order.append(name)
            await release.wait()

    releases = {name: asyncio.Event() for name in ("a1", "a2", "a3", "b1")}
    tasks = [asyncio.create_task(take("a", name, releases[name])) for name in ("a1", "a2", "a3")]
    await settle()
    tasks.append(asyncio.create_task(take("b", "b1", releases["b1"])))
    await settle()
    assert pool.status().waiting == 4  # a1, a2, a3 and b1
    await first.finish()
    for name in ("a1", "b1", "a2", "a3"):
        await settle()
        assert order[-1] == name, order
        releases[name].set()
    await asyncio.gather(*tasks)
    assert order == ["a0", "a1", "b1", "a2", "a3"]
    assert pool.status() == PoolStatus(active=0, limit=1, waiting=0, total=5)
