"""The websocket of one chat: send a message, stop a turn, receive HTML fragments."""

from __future__ import annotations

import json
import uuid
from typing import Any

from chat.live import catchup, fragments, notify
from chat.models import Session
from chat.services import turns

from .sockets import LiveConsumer, in_pool

# Close codes in the 4000 range are ours to define; the page shows why it disconnected.
CLOSE_LOGIN_REQUIRED = 4401
CLOSE_NOT_FOUND = 4404


@in_pool
def _owned_session(user: Any, session_id: uuid.UUID) -> Session | None:
    return Session.objects.filter(pk=session_id, owner=user).first()


_catch_up = in_pool(catchup.catch_up)


class ChatConsumer(LiveConsumer):
    session_id: uuid.UUID
    group: str
    # The last turn and event the page shows: a fragment appending one of these again is dropped.
    shown_turn = shown_event = 0

    async def connect(self) -> None:
        user = self.scope["user"]
        if not user.is_authenticated:
            await self.close(code=CLOSE_LOGIN_REQUIRED)
            return
        self.session_id = uuid.UUID(self.scope["url_route"]["kwargs"]["session_id"])
        session = await _owned_session(user, self.session_id)
        if session is None:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        self.group = notify.chat_group(self.session_id)
        await self.join(self.group)
        await self.accept()
        # The page says what it shows; it gets what it missed, often nothing but the chat's state.
        caught_up = await _catch_up(session=session, since=catchup.Since.parse(self.scope.get("query_string", b"")))
        self.shown_turn, self.shown_event = caught_up.turn, caught_up.event
        await self.send(text_data=caught_up.html)

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.leave(self.group)

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

    async def live_fragment(self, event: dict[str, Any]) -> None:
        # Saved before it was sent, so the catch-up on connect may have shown it already.
        if event.get("turn", self.shown_turn + 1) > self.shown_turn and event.get("event", self.shown_event + 1) > self.shown_event:
            await self.send(text_data=event["html"])
