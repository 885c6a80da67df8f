"""``CLAUDE_MAX_FILE_OPERATIONS`` across every node: file slots as PostgreSQL advisory locks.

No Django imports. A slot is the advisory lock ``(FILE_SLOTS, i)`` for ``i`` below the limit, held on a
connection of its own for as long as the file tool runs: a node that dies loses its connections, and
its slots come free with them. Waiters line up on one more advisory lock, the turnstile: PostgreSQL
grants a lock to its waiters in the order they asked, so the cluster's waiters are served first come,
first served; only the first in line looks for a free slot (every :data:`POLL_SECONDS`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Hashable
from typing import Any

import psycopg

from ..pool import PoolStatus

log = logging.getLogger(__name__)

FILE_SLOTS = 0x66696C65  # "file"
TURNSTILE = -1
POLL_SECONDS = 0.1


class ClusterFileSlots:
    """The node's :class:`runtime.node.FileSlots`, counted across the cluster."""

    def __init__(self, *, conninfo: dict[str, Any], limit: int) -> None:
        self.conninfo = conninfo
        self.limit = limit
        self._held: dict[Hashable, list[tuple[psycopg.AsyncConnection[Any], int]]] = {}
        self.waiting = 0
        self.total = 0
        self._closing: set[asyncio.Task[None]] = set()

    async def acquire(self, *, owner: Hashable = None, on_wait: Callable[[], object] | None = None) -> None:
        self.total += 1
        conn = await psycopg.AsyncConnection.connect(**self.conninfo, autocommit=True)
        try:
            slot = await self._take(conn, on_wait)
        except BaseException:
            await asyncio.shield(conn.close())  # (its locks, the turnstile too, go with it)
            raise
        self._held.setdefault(owner, []).append((conn, slot))

    async def _take(self, conn: psycopg.AsyncConnection[Any], on_wait: Callable[[], object] | None) -> int:
        in_line = await _try(conn, TURNSTILE)
        if in_line and (slot := await self._free_slot(conn)) is not None:
            await _unlock(conn, TURNSTILE)
            return slot
        if on_wait is not None:
            await _maybe_await(on_wait())
        self.waiting += 1
        try:
            if not in_line:
                await conn.execute("SELECT pg_advisory_lock(%s::int, %s::int)", (FILE_SLOTS, TURNSTILE))
            while True:
                # First in line (the others wait on the turnstile): a slot another node frees is not
                # told, so it is looked for.
                if (slot := await self._free_slot(conn)) is not None:
                    break
                await asyncio.sleep(POLL_SECONDS)
        finally:
            self.waiting -= 1
        await _unlock(conn, TURNSTILE)
        return slot

    async def _free_slot(self, conn: psycopg.AsyncConnection[Any]) -> int | None:
        for slot in range(self.limit):
            if await _try(conn, slot):
                return slot
        return None

    def release(self, *, owner: Hashable = None) -> None:
        held = self._held.get(owner)
        if not held:
            return
        conn, _slot = held.pop(0)
        if not held:
            del self._held[owner]
        # Closing the connection gives the slot back (a session's advisory locks end with it).
        task = asyncio.get_running_loop().create_task(conn.close(), name="file-slot-release")
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def status(self) -> PoolStatus:
        active = sum(len(held) for held in self._held.values())
        return PoolStatus(active=active, limit=self.limit, waiting=self.waiting, total=self.total)


async def _try(conn: psycopg.AsyncConnection[Any], key: int) -> bool:
    row = await (await conn.execute("SELECT pg_try_advisory_lock(%s::int, %s::int)", (FILE_SLOTS, key))).fetchone()
    return bool(row and row[0])


async def _unlock(conn: psycopg.AsyncConnection[Any], key: int) -> None:
    with contextlib.suppress(psycopg.Error):
        await conn.execute("SELECT pg_advisory_unlock(%s::int, %s::int)", (FILE_SLOTS, key))


async def _maybe_await(value: object) -> None:
    if asyncio.iscoroutine(value):
        await value
