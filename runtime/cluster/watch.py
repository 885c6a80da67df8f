"""Waiting for a turn that runs in another process: told by PostgreSQL's NOTIFY, not by polling.

Every change of a turn's status is notified on the channel ``claude_turn`` with the turn's id (a
trigger of the turns' table, see the chat app's migrations). One LISTEN connection per process wakes
whoever waits for that turn; the waiter then reads the turn's record. A lost connection is opened
again, and waiters read the record again every :data:`RECHECK_SECONDS` anyway, so a notification
missed meanwhile costs at most that long.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import psycopg

log = logging.getLogger(__name__)

CHANNEL = "claude_turn"
RECHECK_SECONDS = 5.0


class TurnWatch:
    def __init__(self, conninfo: dict[str, Any]) -> None:
        self.conninfo = conninfo
        self._waiters: dict[int, set[asyncio.Event]] = {}
        self._listener: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self.closed = False

    def start(self) -> None:
        if self._listener is None and not self.closed:
            self._listener = asyncio.create_task(self._listen(), name="claude-turn-watch")

    async def close(self) -> None:
        self.closed = True
        self._wake_all()  # waiters see the process is going away
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None

    @contextlib.contextmanager
    def watching(self, turn: int) -> Iterator[asyncio.Event]:
        """An event set when the turn's status changes (enter it before reading the turn's record)."""
        self.start()
        event = asyncio.Event()
        self._waiters.setdefault(turn, set()).add(event)
        try:
            yield event
        finally:
            waiters = self._waiters.get(turn)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._waiters[turn]

    async def changed(self, event: asyncio.Event) -> None:
        """Until the turn changed, or :data:`RECHECK_SECONDS` passed."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), RECHECK_SECONDS)
        event.clear()

    async def _listen(self) -> None:
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(**self.conninfo, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self._ready.set()
                    async for note in conn.notifies():
                        self._wake(note.payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("listening for turns failed (%s); listening again in 1 s", exc)
                self._wake_all()  # whatever changed meanwhile is read again
                await asyncio.sleep(1.0)

    def _wake(self, payload: str) -> None:
        try:
            turn = int(payload)
        except ValueError:
            return
        for event in self._waiters.get(turn, ()):
            event.set()

    def _wake_all(self) -> None:
        for events in self._waiters.values():
            for event in events:
                event.set()
