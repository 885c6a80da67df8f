"""A counting limit on CLI processes, with the figures the pool status page reports."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
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
        self._semaphore = asyncio.Semaphore(limit)
        self.active = 0
        self.waiting = 0
        self.total = 0

    @contextlib.asynccontextmanager
    async def slot(self, *, on_wait: Callable[[], object] | None = None) -> AsyncIterator[None]:
        self.total += 1
        if self._semaphore.locked() and on_wait is not None:
            await _maybe_await(on_wait())
        self.waiting += 1
        try:
            await self._semaphore.acquire()
        finally:
            self.waiting -= 1
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1
            self._semaphore.release()

    def status(self) -> PoolStatus:
        return PoolStatus(active=self.active, limit=self.limit, waiting=self.waiting, total=self.total)


async def _maybe_await(value: object) -> None:
    if asyncio.iscoroutine(value):
        await value
