"""The workspace's websockets: a terminal (``/ws/terminal/<kind>/<id>/``) and the Files page's watch
of its chat or task (``/ws/workspace/<kind>/<id>/``), which says "refresh" when the agent's file
tool (or shell command) returned."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Annotated, Any, Literal

import pydantic
from django.conf import settings

from chat.live import notify
from chat.models import Event
from chat.web.sockets import CLOSE_NOT_FOUND, CLOSE_TOO_MANY, MemberSocket, in_pool

from .. import selectors
from ..services import terminals

CLOSE_FORBIDDEN = 4403
CLOSE_UNAVAILABLE = 4503
# The tools whose result may have changed the folder.
FILE_TOOLS = ("Write", "Edit", "MultiEdit", "NotebookEdit", "Bash")
# A terminal re-reads its member from the session at most this often (not on every keystroke).
RECHECK_SECONDS = 5.0
MAX_INPUT_CHARS = 64 * 1024


@in_pool
def _place(user: Any, kind: str, pk: str) -> selectors.Place | None:
    try:
        return selectors.place_for(user=user, kind=kind, pk=pk)
    except selectors.PlaceRefused:
        return None


class Input(pydantic.BaseModel):
    type: Literal["input"]
    data: Annotated[str, pydantic.StringConstraints(max_length=MAX_INPUT_CHARS)]


class Ack(pydantic.BaseModel):
    """The page wrote this many bytes of output in all (xterm.js's write callback)."""

    type: Literal["ack"]
    bytes: Annotated[int, pydantic.Field(ge=0)]


class Resize(pydantic.BaseModel):
    type: Literal["resize"]
    cols: Annotated[int, pydantic.Field(ge=1, le=terminals.MAX_SIZE)]
    rows: Annotated[int, pydantic.Field(ge=1, le=terminals.MAX_SIZE)]


Frame = pydantic.TypeAdapter(Annotated[Input | Resize | Ack, pydantic.Field(discriminator="type")])
# Output sent to a page that it has not said it wrote: beyond this the page is sent nothing more
# until it acknowledges, its queue grows, and the shell's output is held (`yes` in a terminal would
# otherwise pile up in the server's send buffers as fast as the shell prints).
WINDOW_BYTES = 2 * 1024 * 1024
BAD_FRAME = (
    'The terminal could not read that frame: it takes {"type": "input", "data": "..."}, '
    '{"type": "resize", "cols": N, "rows": N} and {"type": "ack", "bytes": N}. Reload the page if this persists.'
)


def _notice(text: str) -> str:
    return json.dumps({"type": "notice", "text": text})


class TerminalConsumer(MemberSocket):
    """One page of a member's terminal in a folder they may work in."""

    terminal: terminals.Terminal | None = None
    queue: asyncio.Queue[bytes | None] | None = None
    pump: asyncio.Task[None] | None = None
    checked = 0.0
    sent = 0
    acked = 0
    acks: asyncio.Event | None = None

    async def connect(self) -> None:
        if not await self.admit():
            return
        kwargs = self.scope["url_route"]["kwargs"]
        place = await _place(self.scope["user"], kwargs["kind"], kwargs["pk"])
        if place is None:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        if not place.may_work:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        await self.accept()
        try:
            self.terminal, self.queue = terminals.attach(place=place, member_id=self.scope["user"].pk)
        except terminals.TerminalRefused as exc:
            await self.send(text_data=_notice(str(exc)))
            too_many = terminals.open_count(self.scope["user"].pk) >= settings.CLAUDE_MAX_TERMINALS_PER_MEMBER
            await self.close(code=CLOSE_TOO_MANY if too_many else CLOSE_UNAVAILABLE)
            return
        self.checked = time.monotonic()
        self.acks = asyncio.Event()
        self.pump = asyncio.create_task(self._pump(self.queue))

    async def _pump(self, queue: asyncio.Queue[bytes | None]) -> None:
        ended = False
        while not ended:
            data = await queue.get()
            if data is None:
                break
            # What piled up meanwhile goes as one frame.
            while not queue.empty():
                more = queue.get_nowait()
                if more is None:
                    ended = True
                    break
                data += more
            while self.acks is not None and self.sent - self.acked > WINDOW_BYTES:
                self.acks.clear()
                await self.acks.wait()
            if self.terminal is not None:
                terminals.caught_up(self.terminal)
            self.sent += len(data)
            await self.send(bytes_data=data)
        await self.send(text_data=_notice("The shell ended. Reload the page for a new one."))
        await self.close(code=1000)

    async def disconnect(self, code: int) -> None:
        if self.terminal is not None and self.queue is not None:
            terminals.detach(self.terminal, self.queue)
        if self.pump is not None:
            self.pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.pump
        await super().disconnect(code)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.terminal is None:
            return
        if time.monotonic() - self.checked > RECHECK_SECONDS:
            if not await self.still_member():
                return
            self.checked = time.monotonic()
        try:
            frame = Frame.validate_json(text_data or "")
        except (pydantic.ValidationError, ValueError, RecursionError):
            await self.send(text_data=_notice(BAD_FRAME))
            return
        if isinstance(frame, Input):
            self.terminal.write(frame.data.encode("utf-8", "replace"))
        elif isinstance(frame, Ack):
            self.acked = max(self.acked, min(frame.bytes, self.sent))
            if self.acks is not None:
                self.acks.set()
        else:
            self.terminal.resize(cols=frame.cols, rows=frame.rows)


@in_pool
def _changed_files(event_id: int) -> bool:
    return Event.objects.filter(pk=event_id, kind=Event.Kind.TOOL_RESULT, data__tool__in=FILE_TOOLS).exists()


class WatchConsumer(MemberSocket):
    """The Files page of a chat or task: told to refresh when a file tool's result arrives."""

    async def connect(self) -> None:
        if not await self.admit():
            return
        kwargs = self.scope["url_route"]["kwargs"]
        place = await _place(self.scope["user"], kwargs["kind"], kwargs["pk"])
        if place is None or place.session is None:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        await self.join(notify.chat_group(place.session.pk))  # left on disconnect, as every group
        await self.accept()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        pass  # the page sends nothing

    async def live_fragment(self, event: dict[str, Any]) -> None:
        if event.get("shown") == "event_added" and str(event.get("pk", "")).isdigit():
            if await _changed_files(int(event["pk"])):
                await self.send(text_data=json.dumps({"refresh": True}))

    async def prompt_shown(self, message: dict[str, str]) -> None:
        pass  # prompts are the chat page's
