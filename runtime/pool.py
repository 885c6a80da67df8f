"""A counting limit on CLI processes, shared fairly between members, with the pool status figures.

When every slot is taken, waiters queue per owner (a member), and a freed slot goes to the owner
after the one served last (round-robin), first come first served within one owner: one member's
six long turns cannot keep another member's one-line turn waiting behind all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Callable, Hashable
from dataclasses import dataclass


@dataclass(frozen=True)
class PoolStatus:
    active: int
    limit: int
    waiting: int
    total: int


class Pool:
    """At most ``limit`` holders at once; a slot is always given back, whatever happens."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0
        self.total = 0
        self._queues: dict[Hashable, deque[asyncio.Future[None]]] = {}
        self._turn: deque[Hashable] = deque()  # owners with waiters, in the order they are served

    @property
    def waiting(self) -> int:
        return sum(len(queue) for queue in self._queues.values())

    def _free(self) -> bool:
        return self.active < self.limit and not self._turn

    @contextlib.asynccontextmanager
    async def slot(self, *, owner: Hashable = None, on_wait: Callable[[], object] | None = None) -> AsyncIterator[None]:
        await self.acquire(owner=owner, on_wait=on_wait)
        try:
            yield
        finally:
            self.release(owner=owner)

    async def acquire(self, *, owner: Hashable = None, on_wait: Callable[[], object] | None = None) -> None:
        """Take a slot, waiting for one if all are taken (``on_wait`` is called first, then).
        Every acquire must be matched by one :meth:`release`."""
        self.total += 1
        if not self._free():
            if on_wait is not None:
                await _maybe_await(on_wait())
            if not self._free():
                await self._wait(owner)
                return  # the slot was handed over by its last holder: active already counts it
        self.active += 1

    def try_acquire(self, *, owner: Hashable = None) -> bool:
        """Take a slot only if one is free now (nobody waits); never waits. Matched by :meth:`release`."""
        if not self._free():
            return False
        self.active += 1
        return True

    def release(self, *, owner: Hashable = None) -> None:
        self._release(owner)

    async def _wait(self, owner: Hashable) -> None:
        handed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._queues.get(owner)
        if queue is None:
            queue = self._queues[owner] = deque()
            self._turn.append(owner)
        queue.append(handed)
        try:
            await handed
        except BaseException:
            if handed.done() and not handed.cancelled():
                self._release(owner)  # handed over just as the waiter was cancelled: pass it on
            else:
                self._forget(owner, handed)
            raise

    def _forget(self, owner: Hashable, handed: asyncio.Future[None]) -> None:
        queue = self._queues.get(owner)
        if queue is not None and handed in queue:
            queue.remove(handed)
            if not queue:
                del self._queues[owner]
                self._turn.remove(owner)

    def _release(self, owner: Hashable) -> None:
        """Hand the slot to the next owner's oldest waiter, or free it. The owner whose holder just
        finished goes after the others that wait."""
        if len(self._turn) > 1 and owner in self._queues:
            self._turn.remove(owner)
            self._turn.append(owner)
        while self._turn:
            owner = self._turn.popleft()
            queue = self._queues[owner]
            handed = queue.popleft()
            if queue:
                self._turn.append(owner)  # its next waiter comes after the other owners'
            else:
                del self._queues[owner]
            if not handed.done():
                handed.set_result(None)
                return
        self.active -= 1

    def status(self) -> PoolStatus:
        return PoolStatus(active=self.active, limit=self.limit, waiting=self.waiting, total=self.total)


async def _maybe_await(value: object) -> None:
    if asyncio.iscoroutine(value):
        await value
