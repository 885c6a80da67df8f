"""Saving and broadcasting what a turn produces, as it streams."""

from __future__ import annotations

import time

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.utils import timezone

from . import fragments
from .models import Event, Session, Turn

# Streaming text is saved and resent whole at most this often: a reload or a reconnect
# then shows the answer so far, without a database write per token.
FLUSH_SECONDS = 0.2


def _session_status(session_id: object) -> str:
    statuses = set(Turn.objects.filter(session_id=session_id, status__in=Turn.PENDING).values_list("status", flat=True))
    if statuses & {Turn.Status.RUNNING, Turn.Status.WAITING}:
        return Session.Status.RUNNING
    if Turn.Status.QUEUED in statuses:
        return Session.Status.QUEUED
    return Session.Status.IDLE


def refresh_session_status(session_id: object) -> Session:
    session = Session.objects.get(pk=session_id)
    if not session.is_archived:
        session.status = _session_status(session_id)
    session.last_activity_at = timezone.now()
    session.save(update_fields=["status", "last_activity_at"])
    return session


async def broadcast(*, session_id: object, html: str) -> None:
    layer = get_channel_layer()
    if layer is not None:
        await layer.group_send(fragments.group_name(session_id), {"type": "chat.fragment", "html": html})


class Recorder:
    """Saves and broadcasts what a turn produces; assistant text is flushed in batches."""

    def __init__(self, turn: Turn) -> None:
        self.turn = turn
        self.session_id = turn.session_id
        self.streaming: Event | None = None
        self.last_flush = 0.0

    async def _send(self, html: str) -> None:
        await broadcast(session_id=self.session_id, html=html)

    async def status(self, status: str, **fields: object) -> None:
        html = await self._set_status(status, fields)
        await self._send(html)

    @sync_to_async
    def _set_status(self, status: str, fields: dict) -> str:
        turn = self.turn
        turn.status = status
        for name, value in fields.items():
            setattr(turn, name, value)
        turn.save()
        session = refresh_session_status(turn.session_id)
        return fragments.turn_status(turn) + fragments.session_state(session)

    async def add(self, **fields: object) -> None:
        await self.end_text()
        event = await Event.objects.acreate(turn=self.turn, **fields)
        await self._send(await sync_to_async(fragments.event_appended)(event))

    async def delta(self, text: str) -> None:
        if self.streaming is None:
            self.streaming = await Event.objects.acreate(turn=self.turn, kind=Event.Kind.TEXT, text=text, complete=False)
            self.last_flush = time.monotonic()
            await self._send(await sync_to_async(fragments.event_appended)(self.streaming))
            return
        self.streaming.text += text
        if time.monotonic() - self.last_flush >= FLUSH_SECONDS:
            await self._flush()

    async def _flush(self) -> None:
        event = self.streaming
        assert event is not None
        self.last_flush = time.monotonic()
        await event.asave(update_fields=["text", "complete"])
        await self._send(await sync_to_async(fragments.event_replaced)(event))

    async def text(self, text: str) -> None:
        """A complete text block: it ends the streaming one, or stands alone."""
        if self.streaming is not None:
            self.streaming.text = text
            self.streaming.complete = True
            await self._flush()
            self.streaming = None
        else:
            await self.add(kind=Event.Kind.TEXT, text=text)

    async def end_text(self) -> None:
        """Keep partial text when a turn ends mid-stream (stop, timeout, crash)."""
        if self.streaming is not None:
            self.streaming.complete = True
            await self._flush()
            self.streaming = None
