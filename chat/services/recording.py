"""Saving what a turn produces as it streams, and telling the pages that watch.

Every change is saved first and then sent (through :mod:`chat.live.notify`), so a reload or a
reconnect shows the same as the live page. Streaming text is saved in batches.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from asgiref.sync import sync_to_async
from django.utils import timezone

from ..live import notify
from ..models import Event, Session, Turn
from . import mcp

# Streaming text is saved and resent whole at most this often: a reload or a reconnect
# then shows the answer so far, without a database write per token.
FLUSH_SECONDS = 0.2
# A turn is shown running once the CLI has its message, or after this long if its process is still starting.
SHOW_RUNNING_SECONDS = 0.05


def _session_status(session_id: uuid.UUID) -> str:
    statuses = set(Turn.objects.filter(session_id=session_id, status__in=Turn.PENDING).values_list("status", flat=True))
    if statuses & {Turn.Status.RUNNING, Turn.Status.WAITING, Turn.Status.ASKING}:
        return Session.Status.RUNNING
    if Turn.Status.QUEUED in statuses:
        return Session.Status.QUEUED
    return Session.Status.IDLE


def refresh_session_status(session_id: uuid.UUID, *, session: Session | None = None) -> Session:
    """Derive the chat's status from its pending turns (and note the activity). ``session``: the
    chat as just read (locked) by the caller, saving a query on a message's way to the CLI."""
    if session is None:
        session = Session.objects.get(pk=session_id)
    if not session.is_archived:
        session.status = _session_status(session_id)
    session.last_activity_at = timezone.now()
    session.save(update_fields=["status", "last_activity_at"])
    return session


@dataclass(frozen=True)
class Usage:
    """What the CLI reported for a finished turn: its own tokens and cost, and the session's
    running total of cost as the CLI counts it."""

    duration_ms: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    total_cost_usd: float | None = None


class Recorder:
    """Saves and sends what one turn produces; assistant text is flushed in batches."""

    def __init__(self, turn: Turn) -> None:
        self.turn = turn
        self.session_id: uuid.UUID = turn.session_id
        self.streaming: Event | None = None
        self.last_flush = 0.0
        # The tool of each call id: a result is saved with its tool's name, so the page shows it
        # as that tool's output (a command's lines, a read's line count).
        self.tool_names: dict[str, str] = {}
        # Tool calls a permission prompt was shown for (its card is in the prompt).
        self.prompted: set[str] = set()
        # The last entry the turn left in the CLI's transcript (see Turn.cli_uuid).
        self.cli_uuid = ""
        # The chat's status as its member's list last showed it (the turn's session, if it was read with it).
        self.listed_status = turn.session.status if Turn.session.is_cached(turn) else ""
        # Writes that need not hold the turn up (see :meth:`meanwhile`), chained in order.
        self._meanwhile: asyncio.Future[None] | None = None
        self._sent = asyncio.Event()

    def meanwhile(self, write: Awaitable[None]) -> None:
        """Do ``write`` while the turn goes on, once the CLI has its message (:meth:`sent`; its work in
        this process would otherwise hold the message up: templates and the database compete with
        the event loop for the interpreter); the recorder's next write waits for it first, so that
        the records keep their order."""
        before, go = self._meanwhile, self._sent

        async def chained() -> None:
            await go.wait()
            if before is not None:
                await before
            await write

        self._meanwhile = asyncio.ensure_future(chained())

    def sent(self) -> None:
        """The CLI has the turn's message: the writes done meanwhile go on."""
        self._sent.set()

    async def settled(self) -> None:
        """Wait for the writes done meanwhile (what one of them raised is raised here)."""
        self._sent.set()  # whatever comes next (an event, the turn's end) comes after the message
        pending, self._meanwhile = self._meanwhile, None
        if pending is not None:
            await asyncio.shield(pending)

    # -- the turn's status ------------------------------------------------------------
    async def waiting(self) -> None:
        await self._set(status=Turn.Status.WAITING)

    def running_meanwhile(self) -> None:
        """Marked running once the turn's process has its message, or after ``SHOW_RUNNING_SECONDS``
        (a process that starts takes half a second: the page says it runs meanwhile)."""
        self.meanwhile(self._set(status=Turn.Status.RUNNING, started_at=timezone.now()))
        asyncio.get_running_loop().call_later(SHOW_RUNNING_SECONDS, self._sent.set)

    async def resume(self) -> None:
        """Running again (after a permission prompt, or a wait for a file slot)."""
        await self.settled()
        if self.turn.status != Turn.Status.RUNNING:
            await self._set(status=Turn.Status.RUNNING)

    async def ask(self, *, name: str, data: dict[str, Any]) -> Event:
        """A permission prompt of this turn: the turn waits for a person's answer."""
        await self.settled()
        await self.end_text()
        if data.get("tool_use_id"):
            self.prompted.add(str(data["tool_use_id"]))
        event = await Event.objects.acreate(
            turn=self.turn, kind=Event.Kind.PERMISSION, name=name, data=data, complete=False
        )
        await notify.event_added(event, self.session_id)
        await self._set(status=Turn.Status.ASKING)
        return event

    async def finish(
        self, status: str, *, error: str = "", duration_ms: int | None = None, usage: Usage | None = None
    ) -> None:
        """The turn's end: its final status, why it failed (if it did) and what it cost."""
        await self.settled()
        await self.end_text()
        fields: dict[str, Any] = {
            "status": status,
            "error": error,
            "finished_at": timezone.now(),
            "cli_uuid": self.cli_uuid or None,
        }
        if usage is not None:
            fields.update(
                duration_ms=usage.duration_ms or duration_ms,
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cost_usd=usage.cost_usd,
                cli_total_cost_usd=usage.total_cost_usd,
            )
        elif duration_ms is not None:
            fields["duration_ms"] = duration_ms
        await self._set(**fields)

    async def _set(
        self,
        *,
        status: str,
        error: str | None = None,
        started_at: datetime | None = None,
        finished_at: datetime | None = None,
        duration_ms: int | None = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        cost_usd: float | None = None,
        cli_total_cost_usd: float | None = None,
        cli_uuid: str | None = None,
    ) -> None:
        turn = self.turn
        turn.status = status
        changes = {
            "status": status,
            "error": error,
            "started_at": started_at,
            "finished_at": finished_at,
            "duration_ms": duration_ms,
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cost_usd": cost_usd,
            "cli_total_cost_usd": cli_total_cost_usd,
            "cli_uuid": cli_uuid,
        }
        written = [name for name, value in changes.items() if value is not None]
        for name in written:
            setattr(turn, name, changes[name])
        # Only what changed here: other columns (the node that took it, the uuid its message went
        # with) are written meanwhile by others, and a stale copy must not put them back.
        session = await sync_to_async(self._save)(turn, written)
        listed = session.status != self.listed_status
        self.listed_status = session.status
        await notify.turn_changed(turn, session, listed=listed)

    @staticmethod
    def _save(turn: Turn, fields: list[str]) -> Session:
        turn.save(update_fields=fields)
        return refresh_session_status(turn.session_id)

    async def context(self, *, tokens: int | None = None, window: int | None = None) -> None:
        """How full the chat's context window is now (the model's latest request, or a compaction's
        result), and the window's size once the CLI has said it: saved and shown on the chat's pages."""
        session = self.turn.session  # read with the turn: one write, no read, on the turn's hot path
        fields = {
            name: value
            for name, value in (("context_tokens", tokens), ("context_window", window))
            if value and getattr(session, name) != value
        }
        if not fields:
            return
        await Session.objects.filter(pk=self.session_id).aupdate(**fields)
        for name, value in fields.items():
            setattr(session, name, value)
        if session.kind == Session.Kind.CHAT:  # only a chat's page has the meter (a task's has none)
            await notify.context_changed(session)

    async def mcp_seen(self, seen: dict[str, Any]) -> None:
        """The MCP servers and tools as the CLI's init message reports them: saved when they changed,
        and shown on the chat's pages."""
        session = self.turn.session
        if session.mcp_seen == seen:
            return
        session.mcp_seen = seen
        await Session.objects.filter(pk=self.session_id).aupdate(mcp_seen=seen)
        await notify.mcp_changed(session, await sync_to_async(mcp.panel)(session))

    async def prompt_sent_as(self, prompt_uuid: str) -> None:
        """The uuid the turn's message went to the CLI with (what a rewind of the files names)."""
        self.turn.prompt_uuid = prompt_uuid
        await Turn.objects.filter(pk=self.turn.pk).aupdate(prompt_uuid=prompt_uuid)

    # -- what streams -----------------------------------------------------------------
    async def add(
        self, *, kind: str, name: str = "", text: str = "", data: dict[str, Any] | None = None, is_error: bool = False
    ) -> None:
        await self.settled()
        await self.end_text()
        event = await Event.objects.acreate(
            turn=self.turn, kind=kind, name=name, text=text, data=data or {}, is_error=is_error
        )
        await notify.event_added(event, self.session_id)

    async def delta(self, text: str) -> None:
        if self.streaming is None:
            await self.settled()
            self.streaming = await Event.objects.acreate(
                turn=self.turn, kind=Event.Kind.TEXT, text=text, complete=False
            )
            self.last_flush = time.monotonic()
            await notify.event_added(self.streaming, self.session_id)
            return
        self.streaming.text += text
        if time.monotonic() - self.last_flush >= FLUSH_SECONDS:
            await self._flush()

    async def _flush(self) -> None:
        event = self.streaming
        assert event is not None
        self.last_flush = time.monotonic()
        await event.asave(update_fields=["text", "complete"])
        await notify.event_changed(event, self.session_id)

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
