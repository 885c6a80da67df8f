"""What the websocket consumers share: database work off the one shared sync thread, and a cheap
path for the fragments they forward.

Channels runs ``database_sync_to_async`` and its auth middleware on asgiref's single
thread-sensitive thread, which every socket of the process shares (pages do not: Django gives
each request a thread of its own). A reconnect storm of a thousand sockets then queued there one
by one, and so did every turn's writes. Here socket work runs in a small pool of its own threads
instead; each call closes what Django would close at the end of a request.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from channels.auth import AuthMiddleware, get_user
from channels.db import DatabaseSyncToAsync
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.sessions import CookieMiddleware, SessionMiddleware

# SQLite serves readers side by side (WAL); a few threads are enough to keep connects flowing.
SOCKET_DB_THREADS = 4
_pool = ThreadPoolExecutor(max_workers=SOCKET_DB_THREADS, thread_name_prefix="socket-db")


def in_pool[**P, R](func: Callable[P, R]) -> Callable[P, Coroutine[Any, Any, R]]:
    """``func`` as a coroutine run in the sockets' own threads, its database connections tidied like a request's."""
    wrapped: Callable[P, Coroutine[Any, Any, R]] = DatabaseSyncToAsync(func, thread_sensitive=False, executor=_pool)
    return wrapped


class PooledAuthMiddleware(AuthMiddleware):
    """Channels' auth middleware, with the session and user read in the sockets' threads."""

    async def resolve_scope(self, scope: dict[str, Any]) -> None:
        scope["user"]._wrapped = await in_pool(get_user.func)(scope)


def auth_stack(inner: Any) -> Any:
    """Like channels' ``AuthMiddlewareStack``."""
    return CookieMiddleware(SessionMiddleware(PooledAuthMiddleware(inner)))


class LiveConsumer(AsyncWebsocketConsumer):
    """A consumer whose forwarded fragments skip Channels' per-message database clean-up: they
    touch no database, and with a thousand sockets each fragment would otherwise cost a thousand
    trips to the shared sync thread."""

    async def dispatch(self, message: dict[str, Any]) -> None:
        if message["type"] == "live.fragment":
            await self.live_fragment(message)
        else:
            await super().dispatch(message)

    async def live_fragment(self, event: dict[str, Any]) -> None:
        await self.send(text_data=event["html"])
