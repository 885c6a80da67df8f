"""What the websocket consumers share: database work off the one shared sync thread, and a cheap
path for the fragments they forward.

Channels runs ``database_sync_to_async`` and its auth middleware on asgiref's single
thread-sensitive thread, which every socket of the process shares (pages do not: Django gives
each request a thread of its own). A reconnect storm of a thousand sockets then queued there one
by one, and so did every turn's writes. Here socket work runs in a small pool of its own threads
instead, each keeping its database connection for a while: opening one (SQLite registers
Django's functions on it, PostgreSQL logs in) costs more than most of what a socket asks.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import SyncToAsync
from channels.auth import AuthMiddleware, get_user
from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.sessions import CookieMiddleware, SessionMiddleware
from django.db import close_old_connections, connections

# SQLite serves readers side by side (WAL); a few threads are enough to keep connects flowing.
SOCKET_DB_THREADS = 2
# However short CONN_MAX_AGE makes a request's connection, a socket thread keeps its own this long.
KEEP_CONNECTION_SECONDS = 300.0
_pool = ThreadPoolExecutor(max_workers=SOCKET_DB_THREADS, thread_name_prefix="socket-db")


class _InPool(SyncToAsync):  # type: ignore[type-arg]
    def thread_handler(self, loop: Any, *args: Any, **kwargs: Any) -> Any:
        # As around a request: a connection that failed, was left in a transaction or is too old goes.
        close_old_connections()
        try:
            return super().thread_handler(loop, *args, **kwargs)  # type: ignore[no-untyped-call]
        finally:
            for conn in connections.all(initialized_only=True):
                if conn.connection is not None and conn.close_at is not None and \
                        getattr(conn, "kept_for_sockets", None) is not conn.connection:
                    conn.close_at = max(conn.close_at, time.monotonic() + KEEP_CONNECTION_SECONDS)
                    conn.kept_for_sockets = conn.connection  # type: ignore[attr-defined]
            close_old_connections()


def in_pool[**P, R](func: Callable[P, R]) -> Callable[P, Coroutine[Any, Any, R]]:
    """``func`` as a coroutine run in the sockets' own threads."""
    return _InPool(func, thread_sensitive=False, executor=_pool)


class PooledAuthMiddleware(AuthMiddleware):
    """Channels' auth middleware, with the session and user read in the sockets' threads."""

    async def resolve_scope(self, scope: dict[str, Any]) -> None:
        scope["user"]._wrapped = await in_pool(get_user.func)(scope)


def auth_stack(inner: Any) -> Any:
    """Like channels' ``AuthMiddlewareStack``."""
    return CookieMiddleware(SessionMiddleware(PooledAuthMiddleware(inner)))


# Group joins and leaves in flight at once: a reconnect storm otherwise opens a connection to
# Redis for each socket at the same moment (and redis-py refuses past its pool's size).
LAYER_CALLS = 32
_layer_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = weakref.WeakKeyDictionary()


def _slots() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    if loop not in _layer_slots:
        _layer_slots[loop] = asyncio.Semaphore(LAYER_CALLS)
    return _layer_slots[loop]


class LiveConsumer(AsyncWebsocketConsumer):
    """A consumer without Channels' database clean-up before every message: its own database work
    goes through :func:`in_pool`, which tidies its connections itself, and the fragments it
    forwards touch no database (with a thousand sockets, each fragment would otherwise cost a
    thousand trips to the shared sync thread)."""

    async def dispatch(self, message: dict[str, Any]) -> None:
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def join(self, group: str) -> None:
        async with _slots():
            await self.channel_layer.group_add(group, self.channel_name)

    async def leave(self, group: str) -> None:
        async with _slots():
            await self.channel_layer.group_discard(group, self.channel_name)

    async def live_fragment(self, event: dict[str, Any]) -> None:
        await self.send(text_data=event["html"])
