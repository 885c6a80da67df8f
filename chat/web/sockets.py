"""What every websocket of the app shares: who may open one, when it must close, and database
work off the one shared sync thread.

A socket belongs to a logged-in, active member. It joins its member's group, so logging out or
being deactivated closes every socket of that member at once (see :mod:`chat.web.accounts`); it
re-reads its member from the session on every message it receives; a member may keep at most
CLAUDE_MAX_SOCKETS_PER_MEMBER sockets open in this server process. Frames are checked before
anything reads them: too large, not JSON, too deeply nested or not an object get a notice.

Channels runs ``database_sync_to_async`` and its auth middleware on asgiref's single
thread-sensitive thread, which every socket of the process shares (pages do not: Django gives
each request a thread of its own). A reconnect storm of a thousand sockets then queued there one
by one, and so did every turn's writes. Here socket work runs in a small pool of its own threads
instead, each keeping its database connection for a while: opening one (SQLite registers
Django's functions on it, PostgreSQL logs in) costs more than most of what a socket asks.

Connects take turns, in the order they came, a few at a time, from reading the member to sending
the page what it lacks. When a thousand pages reconnect at once, each connect's steps (member,
chat, catch-up) otherwise queued behind the same step of all the others: no socket was done
before nearly all had read their member, every handshake outlasted the server's handshake timeout
(Daphne's ``--websocket_connect_timeout``, 5 s unless set) and was refused with HTTP 403, and the
refused pages' retries queued behind the work still being done for them, so that from then on
every socket served was one already refused. In turns, the first sockets are done in milliseconds,
and a socket whose page left (or whose handshake the server gave up on) while it waited for its
turn leaves the queue then, costing nothing.
"""

from __future__ import annotations

import asyncio
import json
import weakref
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from importlib import import_module
from typing import Any

import pydantic
from channels.auth import AuthMiddleware, get_user
from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.sessions import CookieMiddleware, SessionMiddleware
from django.conf import settings

from chat import dbthreads
from chat.live import fragments
from chat.live.notify import member_group
from chat.services import permissions
from runtime import Engine

from .engine import engine_in

# Close codes in the 4000 range are ours to define; the page shows why it disconnected.
CLOSE_LOGIN_REQUIRED = 4401
CLOSE_NOT_FOUND = 4404
CLOSE_TOO_MANY = 4429
# The largest frame Daphne takes (its --websocket-max-message-size, 1 MiB unless set): larger ones
# are closed with 1009 (see project/asgi.py). The page refuses to send one.
MAX_FRAME_BYTES = 1024 * 1024
ACCOUNT_CLOSED = "account.closed"
MAX_NESTING_NOTICE = "The server could not read that request; reload the page."

# SQLite serves readers side by side (WAL); a few threads are enough to keep connects flowing.
SOCKET_DB_THREADS = 2
_pool = dbthreads.threads(count=SOCKET_DB_THREADS, name="socket-db")


def in_pool[**P, R](func: Callable[P, R]) -> Callable[P, Coroutine[Any, Any, R]]:
    """``func`` as a coroutine run in the sockets' own threads (each keeps its database connection)."""
    return dbthreads.run_in(_pool, func)


_read_user = in_pool(get_user.func)


class PooledAuthMiddleware(AuthMiddleware):
    """Channels' auth middleware, leaving the user unread: :class:`MemberSocket` reads it (in the
    sockets' threads) once its connect's turn has come."""

    async def resolve_scope(self, scope: dict[str, Any]) -> None:
        pass


def auth_stack(inner: Any) -> Any:
    """Like channels' ``AuthMiddlewareStack``."""
    return CookieMiddleware(SessionMiddleware(PooledAuthMiddleware(inner)))


# Group joins and leaves in flight at once: a reconnect storm otherwise opens a connection to
# Redis for each socket at the same moment (and redis-py refuses past its pool's size).
LAYER_CALLS = 32
# Connects under way at once: enough to keep the socket threads and the channel layer busy.
CONNECTS_AT_ONCE = 2 * SOCKET_DB_THREADS


class _PerLoop:
    """An asyncio.Semaphore (first come, first served) for each event loop (tests run several)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.semaphores: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )

    def __call__(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if loop not in self.semaphores:
            self.semaphores[loop] = asyncio.Semaphore(self.size)
        return self.semaphores[loop]


_slots = _PerLoop(LAYER_CALLS)
_connect_turn = _PerLoop(CONNECTS_AT_ONCE)


_open: Counter[int] = Counter()


class PromptAnswer(pydantic.BaseModel):
    """A press of Allow, Deny or "Always allow" on a permission prompt."""

    event: int
    answer: permissions.Answer


def open_sockets(user_id: int) -> int:
    return _open[user_id]


class Socket(AsyncWebsocketConsumer):
    """A websocket of the app's pages: connects in turns, joins groups, reads frames.

    Without Channels' database clean-up before every message: its own database work goes through
    :func:`in_pool`, which tidies its connections itself, and the fragments it forwards touch no
    database (with a thousand sockets, each fragment would otherwise cost a thousand trips to the
    shared sync thread)."""

    # Channels' own: the groups the socket is in. Its base joins those named before connect and
    # leaves every one on disconnect; a socket whose groups depend on what it reads at connect
    # (the chat, the task, the link) adds them with join(), and the base's disconnect leaves them.
    groups: list[str]

    @property
    def engine(self) -> Engine:
        """The engine the composition root put in the ASGI scope."""
        return engine_in(self.scope)

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Kept instead of Channels' own, which closes old database connections (on the one
        # shared sync thread) before every message: with a thousand sockets each fragment would
        # cost a thousand trips there, while these sockets' database work tidies its own
        # connections (in_pool). Same lookup of the handler otherwise.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def __call__(
        self,
        scope: dict[str, Any],
        receive: Callable[[], Awaitable[dict[str, Any]]],
        send: Callable[[dict[str, Any]], Awaitable[None]],
    ) -> None:
        self.receive_next = receive
        await super().__call__(scope, receive, send)

    async def websocket_connect(self, message: dict[str, Any]) -> None:
        # In turns (see the module's doc): the member is read here, not in the middleware, as the
        # middleware runs as soon as the handshake arrives.
        turns = _connect_turn()
        if not await self._wait_for(turns):
            raise StopConsumer
        try:
            self.scope["user"]._wrapped = await _read_user(self.scope)
            await super().websocket_connect(message)
        finally:
            turns.release()

    async def _wait_for(self, turns: asyncio.Semaphore) -> bool:
        """Wait for a connect's turn; False if the handshake ended first (nothing else comes
        before the socket is accepted: what comes is its end)."""
        turn = asyncio.ensure_future(turns.acquire())
        gone = asyncio.ensure_future(self.receive_next())
        await asyncio.wait((turn, gone), return_when=asyncio.FIRST_COMPLETED)
        if not gone.done():
            gone.cancel()  # a queue's get: cancelled, it takes nothing from the queue
            return True
        if turn.done() and not turn.cancelled():
            turns.release()
        else:
            turn.cancel()
        return False

    async def join(self, group: str) -> None:
        """Join ``group`` and add it to :attr:`groups` (left on disconnect)."""
        async with _slots():
            await self.channel_layer.group_add(group, self.channel_name)
        self.groups.append(group)

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        # The groups are left here, through the same limit as joins (see LAYER_CALLS), before
        # Channels' base leaves what is left of them (nothing) and calls disconnect().
        groups, self.groups = self.groups, []
        for group in groups:
            async with _slots():
                await self.channel_layer.group_discard(group, self.channel_name)
        await super().websocket_disconnect(message)

    async def read_frame(self, text_data: str | None) -> dict[str, Any] | None:
        """The frame as a JSON object, or None after telling the page what was wrong with it."""
        limit = settings.CLAUDE_MAX_MESSAGE_CHARS * 6 + 4096  # JSON escapes may grow the text
        if text_data is None or len(text_data) > limit:
            await self.send(
                text_data=fragments.flash(
                    f"That was more than the server takes at once ({limit:,} characters). Send less text."
                )
            )
            return None
        try:
            data = json.loads(text_data)
        except (ValueError, RecursionError):
            data = None
        if not isinstance(data, dict):
            await self.send(text_data=fragments.flash(MAX_NESTING_NOTICE))
            return None
        return data

    async def live_fragment(self, event: dict[str, Any]) -> None:
        await self.send(text_data=event["html"])


class MemberSocket(Socket):
    """A websocket of one member; subclasses add their groups and their actions. Every socket
    of the member also gets their sidebar's recent chats when those change."""

    member_id: int | None = None
    # Whether this socket's person may answer the permission prompts it shows (set on connect).
    may_answer: bool = False

    async def admit(self) -> bool:
        """Accept nothing yet: check the member and the cap, join the member's group."""
        user = self.scope["user"]
        if not user.is_authenticated or not user.is_active:
            await self.close(code=CLOSE_LOGIN_REQUIRED)
            return False
        if _open[user.pk] >= settings.CLAUDE_MAX_SOCKETS_PER_MEMBER:
            await self.close(code=CLOSE_TOO_MANY)
            return False
        self.member_id = user.pk
        _open[user.pk] += 1
        await self.join(member_group(user.pk))
        return True

    async def disconnect(self, code: int) -> None:
        # Its groups (the member's among them) were left by the base (Socket.websocket_disconnect).
        if self.member_id is not None:
            _open[self.member_id] -= 1
            if _open[self.member_id] <= 0:
                del _open[self.member_id]
            self.member_id = None

    async def still_member(self) -> bool:
        """The member, read again from the session: logged out, deactivated or changed password closes."""
        # A session object of its own, so its data is read from the store now, not the copy of connect time.
        key = self.scope["session"].session_key
        self.scope["session"] = import_module(settings.SESSION_ENGINE).SessionStore(session_key=key)
        user = await _read_user(self.scope)
        if not user.is_authenticated or not user.is_active or user.pk != self.member_id:
            await self.close(code=CLOSE_LOGIN_REQUIRED)
            return False
        self.scope["user"] = user
        return True

    async def account_closed(self, event: dict[str, Any]) -> None:
        await self.close(code=CLOSE_LOGIN_REQUIRED)

    async def answer_prompt(self, data: dict[str, Any]) -> None:
        try:
            frame = PromptAnswer.model_validate(data)
        except pydantic.ValidationError:
            await self.send(text_data=fragments.flash(MAX_NESTING_NOTICE))
            return
        try:
            await permissions.answer(event_id=frame.event, answer=frame.answer, user=self.scope["user"])
        except permissions.PromptRefused as exc:
            await self.send(text_data=fragments.flash(str(exc), level="info"))

    async def prompt_shown(self, message: dict[str, str]) -> None:
        """A permission prompt opened or was answered: the view for this socket's person."""
        await self.send(text_data=message["answerer" if self.may_answer else "watcher"])
