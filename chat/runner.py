"""The in-process scheduler of turns: one worker per session, one pool for all processes.

Turns of one session run strictly one at a time in the order they were saved (two runs
resuming one CLI session at once fork its transcript). Every task is tracked here, so a
turn outlives the websocket that asked for it and nothing is leaked on shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable

from django.conf import settings

from .pool import Pool

log = logging.getLogger(__name__)

_runners: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Runner] = weakref.WeakKeyDictionary()


class Runner:
    def __init__(self, *, limit: int, execute: Callable[..., Awaitable[None]], next_turn: Callable[[str], Awaitable[int | None]]) -> None:
        self.pool = Pool(limit)
        self._execute = execute
        self._next_turn = next_turn
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._kicked: set[str] = set()
        self._current: dict[str, tuple[int, asyncio.Task[None]]] = {}
        self._stop_requested: set[int] = set()

    # -- scheduling -----------------------------------------------------------------
    def kick(self, session_id: str) -> None:
        """Make sure a worker will pick up the queued turns of this session."""
        self._kicked.add(session_id)
        worker = self._workers.get(session_id)
        if worker is None or worker.done():
            task = asyncio.create_task(self._work(session_id), name=f"chat-worker-{session_id}")
            self._workers[session_id] = task
            task.add_done_callback(lambda t, sid=session_id: self._forget(sid, t))

    def _forget(self, session_id: str, task: asyncio.Task[None]) -> None:
        if self._workers.get(session_id) is task:
            del self._workers[session_id]
        if not task.cancelled() and task.exception() is not None:
            log.error("worker of session %s failed", session_id, exc_info=task.exception())

    async def _work(self, session_id: str) -> None:
        while True:
            self._kicked.discard(session_id)
            turn_id = await self._next_turn(session_id)
            if turn_id is None:
                # A kick that came in while we looked means a turn was saved meanwhile.
                if session_id in self._kicked:
                    continue
                return
            task = asyncio.create_task(self._execute(turn_id=turn_id, runner=self), name=f"chat-turn-{turn_id}")
            self._current[session_id] = (turn_id, task)
            try:
                await task
            except Exception:
                log.exception("turn %s failed", turn_id)
            finally:
                self._current.pop(session_id, None)
                self._stop_requested.discard(turn_id)

    # -- control --------------------------------------------------------------------
    def stop(self, session_id: str) -> bool:
        """Stop the running turn of a session; False if none runs here."""
        current = self._current.get(session_id)
        if current is None:
            return False
        turn_id, task = current
        self._stop_requested.add(turn_id)
        task.cancel()
        return True

    def stop_was_requested(self, turn_id: int) -> bool:
        return turn_id in self._stop_requested

    def running_turn(self, session_id: str) -> int | None:
        current = self._current.get(session_id)
        return current[0] if current else None

    def is_busy(self, session_id: str) -> bool:
        worker = self._workers.get(session_id)
        return worker is not None and not worker.done()

    async def shutdown(self) -> None:
        """Cancel every worker and wait for them (their turns end as interrupted)."""
        tasks = list(self._workers.values()) + [t for _, t in self._current.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def idle(self) -> None:
        """Wait until no worker is left (tests and the API use this)."""
        # Only unfinished workers: a finished one may still be listed until its callback runs.
        while pending := [task for task in self._workers.values() if not task.done()]:
            await asyncio.wait(pending)


def get_runner() -> Runner:
    """The runner of the running event loop (Daphne has one; each test has its own)."""
    from . import turns

    loop = asyncio.get_running_loop()
    runner = _runners.get(loop)
    if runner is None:
        runner = Runner(limit=settings.CLAUDE_MAX_CONCURRENT, execute=turns.execute_turn,
                        next_turn=turns.next_queued_turn)
        _runners[loop] = runner
    return runner
