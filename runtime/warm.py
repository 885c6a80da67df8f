"""Warm CLI processes: a chat that has just run a turn keeps its process for the next one.

At most ``max_warm`` processes stay warm, the least recently used closed first; one idle for
``idle_seconds`` is closed. A warm process holds a slot of the process pool only while a turn
runs (the turn queue takes it). A turn for a chat with no warm process (or one whose process
died, or whose settings changed) starts a new one, which resumes the session: a restart, an
eviction or a crash costs a cold start, never memory. No Django imports.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Protocol, cast

log = logging.getLogger(__name__)


class Process(Protocol):
    """What the warm pool needs of a live session (see :class:`drivers.claude.live.LiveSession`)."""

    @property
    def alive(self) -> bool: ...

    async def close(self) -> None: ...


@dataclass
class _Warm:
    process: Process
    fingerprint: Hashable
    used: float
    busy: bool = False


class WarmPool:
    def __init__(self, *, max_warm: int, idle_seconds: float) -> None:
        self.max_warm = max_warm
        self.idle_seconds = idle_seconds
        self._warm: OrderedDict[str, _Warm] = OrderedDict()
        self._closing: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.started = 0  # processes started (cold starts), for the benchmark and tests

    def __len__(self) -> int:
        return len(self._warm)

    def processes(self) -> list[Process]:
        """Every process it holds, idle or busy (a copy: safe to read from another thread)."""
        return [entry.process for entry in list(self._warm.values())]

    async def take[P: Process](self, key: str, *, fingerprint: Hashable, start: Callable[[], Awaitable[P]]) -> P:
        """The warm process of ``key`` if it is alive and was started the same way; else a new one."""
        self._loop = asyncio.get_running_loop()
        entry = self._warm.get(key)
        if entry is not None and (not entry.process.alive or entry.fingerprint != fingerprint):
            self._close(self._warm.pop(key))
            entry = None
        if entry is None:
            process = await start()
            self.started += 1
            entry = _Warm(process=process, fingerprint=fingerprint, used=time.monotonic())
            self._warm[key] = entry
        entry.busy = True
        self._warm.move_to_end(key)
        self._evict()
        self._ensure_sweeper()
        return cast(P, entry.process)  # started by this key's start(), which makes P

    async def give_back(self, key: str, *, keep: bool = True) -> None:
        """The turn is over: the process stays warm, or is closed before this returns (``keep=False``,
        it died, or ``max_warm`` leaves no room for it). The turn holds its pool slot until then, so
        a closing process still counts: no more processes than the pool's limit run turns or end."""
        entry = self._warm.get(key)
        if entry is None:
            return
        entry.busy = False
        entry.used = time.monotonic()
        closing = None
        if not keep or not entry.process.alive:
            closing = self._close(self._warm.pop(key))
        closing = self._evict().get(key, closing)
        if closing is not None:
            await asyncio.shield(closing)

    def drop(self, key: str) -> None:
        """Close the process of ``key`` (a deleted or archived chat), if it is warm and idle.

        Safe from any thread: a sync view deleting a chat runs outside the runtime's loop, where
        the pool's state must not be touched, so the work is handed to that loop."""
        loop = self._loop
        if loop is None:
            return  # nothing was ever started
        try:
            here = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        if here is loop:
            self._drop(key)
        elif not loop.is_closed():
            loop.call_soon_threadsafe(self._drop, key)

    def _drop(self, key: str) -> asyncio.Task[None] | None:
        entry = self._warm.get(key)
        if entry is not None and not entry.busy:  # a running turn gives it back itself
            return self._close(self._warm.pop(key))
        return None

    def close_and_wait(self, key: str, *, timeout: float) -> None:
        """Close the process of ``key`` if it is warm and idle, and wait (at most ``timeout``
        seconds) until it has exited: what it writes as it exits (the CLI flushes its transcript)
        is then on disk. For a thread other than the pool's loop (a sync service); on the loop
        itself it only starts the close, as :meth:`drop` does."""
        loop = self._loop
        if loop is None or loop.is_closed() or key not in self._warm:
            return
        try:
            here = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        if here is loop or not loop.is_running():
            self.drop(key)
            return

        async def close() -> None:
            closing = self._drop(key)
            if closing is not None:
                await asyncio.shield(closing)

        try:
            asyncio.run_coroutine_threadsafe(close(), loop).result(timeout)
        except TimeoutError:
            log.warning("the warm process of %s did not exit within %s s", key, timeout)
        except Exception:
            log.exception("closing the warm process of %s failed", key)

    def _evict(self) -> dict[str, asyncio.Task[None]]:
        """Close idle processes over ``max_warm``, least recently used first; their closing tasks."""
        idle = [key for key, entry in self._warm.items() if not entry.busy]
        closing = {}
        while len(self._warm) > self.max_warm and idle:
            key = idle.pop(0)
            closing[key] = self._close(self._warm.pop(key))
        return closing

    def _close(self, entry: _Warm) -> asyncio.Task[None]:
        task = asyncio.create_task(entry.process.close(), name="close-warm-claude")
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
        return task

    def _ensure_sweeper(self) -> None:
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.create_task(self._sweep(), name="warm-claude-sweeper")

    async def _sweep(self) -> None:
        while self._warm:
            await asyncio.sleep(min(self.idle_seconds, 30.0) / 2)
            now = time.monotonic()
            for key, entry in list(self._warm.items()):
                if not entry.busy and now - entry.used >= self.idle_seconds:
                    self._close(self._warm.pop(key))

    async def idle(self) -> None:
        """Wait until processes being closed are closed (tests use this)."""
        # Only unfinished ones: a finished close stays listed until its done callback runs, and
        # awaiting only finished tasks never yields to the loop, so that callback would never run.
        while pending := [task for task in self._closing if not task.done()]:
            await asyncio.wait(pending)

    async def shutdown(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        for key in list(self._warm):
            self._close(self._warm.pop(key))
        await self.idle()
