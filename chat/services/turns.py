"""Services for chat turns: accept a message, run it through the CLI, record what streams.

A message is saved as a queued turn before anything runs, then submitted to the runtime's
queue of its session (see :mod:`runtime.turns`), which runs it when the earlier turns of that
session are done and a process slot is free. The CLI itself is driven by :mod:`drivers.claude`.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.models import User
from django.db import close_old_connections, transaction

import runtime

from ..live import notify
from ..models import Session, Turn
from . import attachments, execution
from .execution import TurnOptions
from .recording import Recorder, refresh_session_status

log = logging.getLogger(__name__)

TOOL_RESULT_KEEP_CHARS = 20_000
TITLE_CHARS = 60


class TurnRefused(Exception):
    """A message that cannot be accepted; the text says why and what to do."""


# ---------------------------------------------------------------------------------------
# Accepting a message


def title_from(text: str) -> str:
    """A chat's (or task's) title from the first words of its first message."""
    first = " ".join(text.split())
    return first if len(first) <= TITLE_CHARS else first[: TITLE_CHARS - 1].rstrip() + "…"


def task_session_refusal(session: Session) -> str:
    # The task is reached through its reverse relation: the chat app does not import the tasks app.
    task = getattr(session, "task", None)
    name = f"task #{task.pk}" if task is not None else "a task"
    return (
        f"This session belongs to {name}: it takes messages only as the task's follow-ups (two senders at once "
        "would fork its transcript). Send your instruction from the task's page, or start a chat of your own."
    )


def validate_message(text: object) -> str:
    if not isinstance(text, str) or not text.strip():
        raise TurnRefused("Type a message first.")
    if "\x00" in text:
        raise TurnRefused("The message holds a NUL character, which cannot be stored. Remove it and send again.")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise TurnRefused(
            "The message holds a broken character (a lone surrogate), which cannot be stored. "
            "Paste the text again and send it."
        ) from None
    limit = settings.CLAUDE_MAX_MESSAGE_CHARS
    if len(text) > limit:
        raise TurnRefused(
            f"The message is {len(text):,} characters long; the limit is {limit:,}. Shorten it or attach less text."
        )
    return text


@sync_to_async
def _save_message(session_id: uuid.UUID, user: User | None, text: str, files: object) -> tuple[Turn, Session]:
    with transaction.atomic():
        session = Session.objects.select_for_update().get(pk=session_id)
        if session.kind == Session.Kind.TASK:
            raise TurnRefused(task_session_refusal(session))
        if session.is_archived:
            raise TurnRefused("This chat is archived and read-only. Press Restore to continue it.")
        try:
            attached = attachments.validate(session=session, paths=files)
        except attachments.AttachmentRefused as exc:
            raise TurnRefused(str(exc)) from None
        turn = Turn.objects.create(session=session, author=user, prompt=text, attachments=attached)
        if not session.title:
            session.title = title_from(text)
            session.save(update_fields=["title"])
        session = refresh_session_status(session_id)
    return turn, session


@dataclass(frozen=True)
class Submitted:
    """A saved turn and its place in the runtime's queue."""

    turn: Turn
    ticket: runtime.Ticket


async def submit_message(
    *, session_id: uuid.UUID, user: User | None, text: str, options: TurnOptions | None = None, files: object = None
) -> Submitted:
    """Save the message as a queued turn (before any CLI runs), queue it, and show it.

    ``files``: the attachments it names (paths :func:`attachments.save` returned), checked here.

    Saving and queueing finish even if the caller goes away meanwhile: a turn that is saved is
    always queued (never left "queued" with nothing to run it)."""
    text = validate_message(text)
    if user is not None:
        waiting = runtime.current().turns.waiting_for(user.pk)
        limit = settings.CLAUDE_MAX_QUEUED_PER_MEMBER
        if waiting >= limit:
            raise TurnRefused(
                f"You have {waiting} messages waiting to run (the limit is {limit}), so this one was not "
                "sent. Wait for one to finish, or cancel one, then send it again."
            )
    return await asyncio.shield(_save_queue_show(session_id, user, text, options, files))


async def _save_queue_show(
    session_id: uuid.UUID, user: User | None, text: str, options: TurnOptions | None, files: object
) -> Submitted:
    turn, session = await _save_message(session_id, user, text, files)
    try:
        # Shown before it is queued: once queued it may start at once, and a page must have the
        # turn before the fragment that says it runs (that one replaces the turn's status in place).
        await notify.turn_added(turn, session)
    finally:
        submitted = queue_turn(turn=turn, owner_id=session.owner_id, options=options)
    return submitted


def queue_turn(*, turn: Turn, owner_id: int | None, options: TurnOptions | None = None) -> Submitted:
    """Queue a saved turn behind its session's earlier ones (whoever sent them)."""
    job = ChatTurn(turn_id=turn.pk, options=options or TurnOptions())
    ticket = runtime.current().turns.submit(key=turn.pk, session=str(turn.session_id), owner=owner_id, job=job)
    return Submitted(turn=turn, ticket=ticket)


async def stop_turn(*, session_id: uuid.UUID) -> bool:
    """Stop the running turn of a session, if one runs."""
    return runtime.current().turns.stop(str(session_id))


async def cancel_turn(*, session_id: uuid.UUID, turn_id: int) -> bool:
    """Cancel a turn that waits (queued behind others, or for a process slot): it never runs and
    stays in the chat as cancelled. False if it runs or has ended."""
    ticket = runtime.current().turns.find(str(session_id), turn_id)
    if ticket is None or not isinstance(ticket.job, ChatTurn):
        return False
    ticket.job.withdraw_note = "Cancelled before it ran."
    return await runtime.current().turns.withdraw(ticket)


async def withdraw_turn(*, submitted: Submitted, reason: str) -> bool:
    """Take back a turn that has not started: it never runs, and stays in the chat as stopped
    with ``reason``. False if it has started (or ended) meanwhile."""
    job = submitted.ticket.job
    assert isinstance(job, ChatTurn)
    job.withdraw_note = reason
    return await runtime.current().turns.withdraw(submitted.ticket)


# ---------------------------------------------------------------------------------------
# The runtime's job of a turn


class ChatTurn:
    """The runtime's job for one saved turn (see :class:`runtime.TurnJob`)."""

    def __init__(self, *, turn_id: int, options: TurnOptions) -> None:
        self.turn_id = turn_id
        self.options = options
        self.withdraw_note = ""
        self._recorder: Recorder | None = None

    async def _recorder_for(self) -> Recorder:
        if self._recorder is None:
            turn = await Turn.objects.select_related("session").aget(pk=self.turn_id)
            self._recorder = Recorder(turn)
        return self._recorder

    async def waiting(self) -> None:
        await (await self._recorder_for()).waiting()

    async def run(self, ticket: runtime.Ticket) -> None:
        try:
            recorder = await self._recorder_for()
            await execution.execute(
                recorder=recorder,
                options=self.options,
                stopped=lambda: ticket.stop_reason not in (None, runtime.StopReason.SHUTDOWN),
            )
        finally:
            # The runtime's thread keeps no database connection between turns.
            await asyncio.shield(sync_to_async(close_old_connections)())

    async def dropped(self, reason: runtime.StopReason) -> None:
        recorder = await self._recorder_for()
        if reason == runtime.StopReason.SHUTDOWN:
            await recorder.finish(Turn.Status.INTERRUPTED, error=INTERRUPTED_BEFORE_START)
        else:
            await recorder.finish(
                Turn.Status.STOPPED, error=self.withdraw_note if reason == runtime.StopReason.WITHDRAWN else ""
            )


INTERRUPTED_BEFORE_START = "The server shut down before this turn ran. Send the message again."
