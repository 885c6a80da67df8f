"""The websocket of one chat: send a message, stop or cancel a turn, receive HTML fragments."""

from __future__ import annotations

import uuid
from typing import Any

from channels.db import database_sync_to_async

from chat import selectors
from chat.live import fragments, notify
from chat.models import Session
from chat.services import turns

from .sockets import CLOSE_NOT_FOUND, MemberSocket


@database_sync_to_async
def _owned_session(user: Any, session_id: uuid.UUID) -> Session | None:
    return Session.objects.filter(pk=session_id, owner=user).first()


@database_sync_to_async
def _refresh(session_id: uuid.UUID) -> str:
    session = Session.objects.get(pk=session_id)
    page = selectors.latest_turns(session=session)
    return fragments.turns_refreshed(session, page, may_answer=True) + fragments.session_state(session)


class ChatConsumer(MemberSocket):
    """A chat's page: only its owner connects, and answers its prompts."""

    session_id: uuid.UUID
    group: str
    may_answer = True

    async def connect(self) -> None:
        if not await self.admit():
            return
        self.session_id = uuid.UUID(self.scope["url_route"]["kwargs"]["session_id"])
        if await _owned_session(self.scope["user"], self.session_id) is None:
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
        await super().disconnect(code)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        data = await self.read_frame(text_data)
        if data is None or not await self.still_member():
            return
        match data.get("action"):
            case "stop":
                await self.stop()
            case "cancel":
                await self.cancel(data.get("turn"))
            case "permission":
                await self.answer_prompt(data)
            case None:
                await self.message(data.get("message"), data.get("attachments"))
            case _:
                await self.send(text_data=fragments.flash("The server could not read that request; reload the page."))

    async def stop(self) -> None:
        if not await turns.stop_turn(session_id=self.session_id):
            await self.send(text_data=fragments.flash("Nothing is running in this chat.", level="info"))

    async def cancel(self, turn_id: object) -> None:
        if not isinstance(turn_id, int | str) or not str(turn_id).isdigit():
            await self.send(text_data=fragments.flash("The server could not read that request; reload the page."))
            return
        if not await turns.cancel_turn(session_id=self.session_id, turn_id=int(turn_id)):
            await self.send(text_data=fragments.flash("That message has started or ended already.", level="info"))

    async def message(self, text: object, files: object = None) -> None:
        try:
            await turns.submit_message(session_id=self.session_id, user=self.scope["user"], text=turns.validate_message(text),
                                       files=files)
        except turns.TurnRefused as exc:
            await self.send(text_data=fragments.flash(str(exc), refused=True))
        except Session.DoesNotExist:
            await self.close(code=CLOSE_NOT_FOUND)

    async def live_fragment(self, event: dict[str, str]) -> None:
        await self.send(text_data=event["html"])
