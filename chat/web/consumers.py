"""The websocket of one chat: send a message, stop or cancel a turn, receive HTML fragments."""

from __future__ import annotations

import uuid
from typing import Any

from chat.live import catchup, fragments, notify
from chat.models import Session
from chat.services import disk, turns

from .sockets import CLOSE_NOT_FOUND, MemberSocket, in_pool


@in_pool
def _owned_session(user: Any, session_id: uuid.UUID) -> Session | None:
    return Session.objects.filter(pk=session_id, owner=user).first()


_catch_up = in_pool(catchup.catch_up)


class ChatConsumer(MemberSocket):
    """A chat's page: only its owner connects, and answers its prompts."""

    session_id: uuid.UUID
    group: str
    may_answer = True
    # The last turn and event the page shows: a fragment appending one of these again is dropped.
    shown_turn = shown_event = 0

    async def connect(self) -> None:
        if not await self.admit():
            return
        self.session_id = uuid.UUID(self.scope["url_route"]["kwargs"]["session_id"])
        session = await _owned_session(self.scope["user"], self.session_id)
        if session is None:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        self.group = notify.chat_group(self.session_id)
        await self.join(self.group)
        await self.accept()
        # The page says what it shows; it gets what it missed, often nothing but the chat's state.
        caught_up = await _catch_up(
            session=session, since=catchup.Since.parse(self.scope.get("query_string", b"")), may_answer=self.may_answer
        )
        self.shown_turn, self.shown_event = caught_up.turn, caught_up.event
        await self.send(text_data=caught_up.html)

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.leave(self.group)
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
        if not await turns.stop_turn(engine=self.engine, session_id=self.session_id):
            await self.send(text_data=fragments.flash("Nothing is running in this chat.", level="info"))

    async def cancel(self, turn_id: object) -> None:
        if not isinstance(turn_id, int | str) or not str(turn_id).isdigit():
            await self.send(text_data=fragments.flash("The server could not read that request; reload the page."))
            return
        if not await turns.cancel_turn(engine=self.engine, session_id=self.session_id, turn_id=int(turn_id)):
            await self.send(text_data=fragments.flash("That message has started or ended already.", level="info"))

    async def message(self, text: object, files: object = None) -> None:
        try:
            await turns.submit_message(
                engine=self.engine,
                session_id=self.session_id,
                user=self.scope["user"],
                text=turns.validate_message(text),
                files=files,
            )
        except turns.TurnRefused as exc:
            await self.send(text_data=fragments.flash(str(exc), refused=True))
        except Session.DoesNotExist:
            await self.close(code=CLOSE_NOT_FOUND)
        except Exception as exc:
            if (full := disk.explain(exc, what="your message")) is None:
                raise
            await self.send(text_data=fragments.flash(full, refused=True))

    async def live_fragment(self, event: dict[str, Any]) -> None:
        # Saved before it was sent, so the catch-up on connect may have shown it already.
        if (
            event.get("turn", self.shown_turn + 1) > self.shown_turn
            and event.get("event", self.shown_event + 1) > self.shown_event
        ):
            await self.send(text_data=event["html"])

    async def prompt_shown(self, message: dict[str, str]) -> None:
        # A prompt opened before the page connected came with the catch-up already.
        if message["added"] and int(message["event"]) <= self.shown_event:
            return
        await super().prompt_shown(message)
