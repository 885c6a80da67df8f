"""Warm CLI processes: a chat that has just run a turn keeps its process for the next one.

At most ``max_warm`` processes stay warm, the least recently used closed first; one idle for
``idle_seconds`` is closed. A warm process holds a slot of the process pool only while a turn
runs (the turn queue takes it). A turn for a chat with no warm process (or one whose process
died, or whose settings changed) starts a new one, which resumes the session: a restart, an
eviction or a crash costs a cold start, never memory. No Django imports.

A process may also be started before its first turn (:meth:`WarmPool.prewarm`: a chat's page is
open, its member typing): it counts as warm, is the one the turn takes (a turn that comes while it
starts waits for it), and is closed if no turn takes it within its time. A member gets at most
``PREWARMED_PER_MEMBER`` such processes at once, and beyond a free place no more than their share
of the warm places (``max_warm`` divided between the members who have warm processes).
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

# Processes started ahead of a turn that no turn has taken yet, per member: a member opening ten
# tabs starts two.
PREWARMED_PER_MEMBER = 2


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
    owner: Hashable = None
    # Started ahead of a turn, and no turn has taken it yet: closed when this timer fires.
    unused: asyncio.TimerHandle | None = None


@dataclass
class _Starting:
    """A process being started ahead of a turn."""

    fingerprint: Hashable
    owner: Hashable
    task: asyncio.Task[None]
    unwanted: bool = False  # the chat went (deleted, archived) while it started: closed once up


class WarmPool:
    def __init__(self, *, max_warm: int, idle_seconds: float) -> None:
        self.max_warm = max_warm
        self.idle_seconds = idle_seconds
        self._warm: OrderedDict[str, _Warm] = OrderedDict()
        self._starting: dict[str, _Starting] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.started = 0  # processes started (cold starts), for the benchmark and tests
        self.prewarm_used = 0  # processes started ahead that a turn took

    def __len__(self) -> int:
        return len(self._warm)

    def processes(self) -> list[Process]:
        """Every process it holds, idle or busy (a copy: safe to read from another thread)."""
        return [entry.process for entry in list(self._warm.values())]

    def has(self, key: str) -> bool:
        """Whether ``key`` has a process here (warm, or being started ahead)."""
        return key in self._warm or key in self._starting

    async def take[P: Process](
        self, key: str, *, fingerprint: Hashable, start: Callable[[], Awaitable[P]], owner: Hashable = None
    ) -> P:
        """The warm process of ``key`` if it is alive and was started the same way; else a new one.
        One being started ahead of this turn is waited for."""
        self._loop = asyncio.get_running_loop()
        starting = self._starting.get(key)
        if starting is not None:
            # It lands among the warm ones (or failed: then a new one starts here).
            await asyncio.wait({starting.task})
        entry = self._warm.get(key)
        if entry is not None and (not entry.process.alive or entry.fingerprint != fingerprint):
            self._close(self._warm.pop(key))
            entry = None
        if entry is None:
            process = await start()
            self.started += 1
            entry = _Warm(process=process, fingerprint=fingerprint, used=time.monotonic(), owner=owner)
            self._warm[key] = entry
        if entry.unused is not None:
            entry.unused.cancel()
            entry.unused = None
            self.prewarm_used += 1
        entry.busy = True
        self._warm.move_to_end(key)
        self._evict()
        self._ensure_sweeper()
        return cast(P, entry.process)  # started by this key's start(), which makes P

    def prewarm(
        self,
        key: str,
        *,
        fingerprint: Hashable,
        start: Callable[[], Awaitable[Process]],
        owner: Hashable,
        unused_seconds: float,
    ) -> asyncio.Task[None] | None:
        """Start ``key``'s process ahead of its first turn, if it has none and its member has room
        (see the module's doc); closed if no turn takes it within ``unused_seconds``. The task that
        starts it, or None if none is started."""
        self._loop = asyncio.get_running_loop()
        if unused_seconds <= 0 or key in self._warm or key in self._starting or not self._room_for(owner):
            return None
        task = asyncio.create_task(self._prewarm(key, start, unused_seconds), name=f"prewarm-claude-{key}")
        self._starting[key] = _Starting(fingerprint=fingerprint, owner=owner, task=task)
        return task

    def _room_for(self, owner: Hashable) -> bool:
        ahead = sum(1 for entry in self._warm.values() if entry.owner == owner and entry.unused is not None)
        ahead += sum(1 for starting in self._starting.values() if starting.owner == owner)
        if self.max_warm <= 0 or ahead >= PREWARMED_PER_MEMBER:
            return False
        if len(self._warm) + len(self._starting) < self.max_warm:
            return True
        # No free place: only within the member's share, and only in place of an idle process.
        owners = [entry.owner for entry in self._warm.values()] + [s.owner for s in self._starting.values()]
        share = max(1, self.max_warm // len({*owners, owner}))
        return owners.count(owner) < share and any(not entry.busy for entry in self._warm.values())

    async def _prewarm(self, key: str, start: Callable[[], Awaitable[Process]], unused_seconds: float) -> None:
        starting = self._starting[key]
        try:
            try:
                process = await start()
            except Exception as exc:
                # Nothing is lost: the turn, if one comes, starts its process and says what fails.
                log.info("starting the process of %s ahead of its turn failed: %s", key, exc)
                return
            self.started += 1
            entry = _Warm(
                process=process, fingerprint=starting.fingerprint, used=time.monotonic(), owner=starting.owner
            )
            if starting.unwanted or key in self._warm:
                await asyncio.shield(self._close(entry))  # whoever waits for this start waits for the close
                return
            entry.unused = asyncio.get_running_loop().call_later(unused_seconds, self._unused, key, entry)
            self._warm[key] = entry
            self._evict()
            self._ensure_sweeper()
        finally:
            if self._starting.get(key) is starting:
                del self._starting[key]

    def _unused(self, key: str, entry: _Warm) -> None:
        """No turn took a process started ahead of it in its time: it goes."""
        if self._warm.get(key) is entry and not entry.busy:
            self._close(self._warm.pop(key))

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
        starting = self._starting.get(key)
        if starting is not None:
            starting.unwanted = True
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
        if loop is None or loop.is_closed() or (key not in self._warm and key not in self._starting):
            return
        try:
            here = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        if here is loop or not loop.is_running():
            self.drop(key)
            return

        async def close() -> None:
            starting = self._starting.get(key)
            if starting is not None:
                starting.unwanted = True  # closed as soon as it is up
                await asyncio.wait({starting.task})
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
        if entry.unused is not None:
            entry.unused.cancel()
            entry.unused = None
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
        for starting in list(self._starting.values()):
            starting.unwanted = True
        await asyncio.gather(*(starting.task for starting in list(self._starting.values())), return_exceptions=True)
        for key in list(self._warm):
            self._close(self._warm.pop(key))
        await self.idle()
