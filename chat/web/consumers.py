"""The websocket of one chat: send a message, stop a turn, receive HTML fragments."""

from __future__ import annotations

import json
import uuid
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from chat import selectors
from chat.live import fragments, notify
from chat.models import Session
from chat.services import turns

# Close codes in the 4000 range are ours to define; the page shows why it disconnected.
CLOSE_LOGIN_REQUIRED = 4401
CLOSE_NOT_FOUND = 4404


@database_sync_to_async
def _owned_session(user: Any, session_id: uuid.UUID) -> Session | None:
    return Session.objects.filter(pk=session_id, owner=user).first()


@database_sync_to_async
def _refresh(session_id: uuid.UUID) -> str:
    session = Session.objects.get(pk=session_id)
    return fragments.turns_refreshed(session, selectors.latest_turns(session=session)) + fragments.session_state(session)


class ChatConsumer(AsyncWebsocketConsumer):
    session_id: uuid.UUID
    group: str

    async def connect(self) -> None:
        user = self.scope["user"]
        if not user.is_authenticated:
            await self.close(code=CLOSE_LOGIN_REQUIRED)
            return
        self.session_id = uuid.UUID(self.scope["url_route"]["kwargs"]["session_id"])
        if await _owned_session(user, self.session_id) is None:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        self.group = notify.chat_group(self.session_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        # A reconnect may have missed fragments: resend the recent turns whole.
        await self.send(text_data=await _refresh(self.session_id))

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            data = json.loads(text_data or "")
        except ValueError:
            data = None
        if not isinstance(data, dict):
            await self.send(text_data=fragments.flash("The server could not read that request; reload the page."))
            return
        if data.get("action") == "stop":
            await self.stop()
        else:
            await self.message(data.get("message"))

    async def stop(self) -> None:
        if not await turns.stop_turn(session_id=self.session_id):
            await self.send(text_data=fragments.flash("Nothing is running in this chat.", level="info"))

    async def message(self, text: object) -> None:
        try:
            await turns.submit_message(session_id=self.session_id, user=self.scope["user"], text=turns.validate_message(text))
        except turns.TurnRefused as exc:
            await self.send(text_data=fragments.flash(str(exc)))
        except Session.DoesNotExist:
            await self.close(code=CLOSE_NOT_FOUND)

    async def live_fragment(self, event: dict[str, str]) -> None:
        await self.send(text_data=event["html"])
