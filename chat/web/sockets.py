"""What every websocket of the app shares: who may open one, and when it must close.

A socket belongs to a logged-in, active member. It joins its member's group, so logging out or
being deactivated closes every socket of that member at once (see :mod:`chat.web.accounts`); it
re-reads its member from the session on every message it receives; a member may keep at most
CLAUDE_MAX_SOCKETS_PER_MEMBER sockets open in this server process. Frames are checked before
anything reads them: too large, not JSON, too deeply nested or not an object get a notice.
"""

from __future__ import annotations

import json
from collections import Counter
from importlib import import_module
from typing import Any

import pydantic
from asgiref.sync import sync_to_async
from channels.auth import get_user
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from chat.live import fragments
from chat.services import permissions

# Close codes in the 4000 range are ours to define; the page shows why it disconnected.
CLOSE_LOGIN_REQUIRED = 4401
CLOSE_NOT_FOUND = 4404
CLOSE_TOO_MANY = 4429
ACCOUNT_CLOSED = "account.closed"
MAX_NESTING_NOTICE = "The server could not read that request; reload the page."

_open: Counter[int] = Counter()


class PromptAnswer(pydantic.BaseModel):
    """A press of Allow, Deny or "Always allow" on a permission prompt."""

    event: int
    answer: permissions.Answer


def member_group(user_id: int) -> str:
    return f"member-{int(user_id)}"


def open_sockets(user_id: int) -> int:
    return _open[user_id]


class MemberSocket(AsyncWebsocketConsumer):
    """A websocket of one member; subclasses add their groups and their actions."""

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
        await self.channel_layer.group_add(member_group(user.pk), self.channel_name)
        return True

    async def disconnect(self, code: int) -> None:
        if self.member_id is not None:
            await self.channel_layer.group_discard(member_group(self.member_id), self.channel_name)
            _open[self.member_id] -= 1
            if _open[self.member_id] <= 0:
                del _open[self.member_id]
            self.member_id = None

    async def still_member(self) -> bool:
        """The member, read again from the session: logged out, deactivated or changed password closes."""
        # A session object of its own, so its data is read from the store now, not the copy of connect time.
        key = self.scope["session"].session_key
        self.scope["session"] = import_module(settings.SESSION_ENGINE).SessionStore(session_key=key)
        user = await get_user(self.scope)
        if not user.is_authenticated or not user.is_active or user.pk != self.member_id:
            await self.close(code=CLOSE_LOGIN_REQUIRED)
            return False
        self.scope["user"] = user
        return True

    async def read_frame(self, text_data: str | None) -> dict[str, Any] | None:
        """The frame as a JSON object, or None after telling the page what was wrong with it."""
        limit = settings.CLAUDE_MAX_MESSAGE_CHARS * 6 + 4096  # JSON escapes may grow the text
        if text_data is None or len(text_data) > limit:
            await self.send(text_data=fragments.flash(
                f"That was more than the server takes at once ({limit:,} characters). Send less text."))
            return None
        try:
            data = json.loads(text_data)
        except (ValueError, RecursionError):
            data = None
        if not isinstance(data, dict):
            await self.send(text_data=fragments.flash(MAX_NESTING_NOTICE))
            return None
        return data

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
        """A permission prompt opened or was answered: rendered for this socket's person."""
        html = await sync_to_async(fragments.prompt)(int(message["event"]), added=bool(message["added"]),
                                                     may_answer=self.may_answer)
        await self.send(text_data=html)
