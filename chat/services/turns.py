"""Services for chat turns: accept a message, submit it to the engine, and run it when the engine says.

A message is saved as a queued turn before anything runs, then submitted by its id to the engine
(:class:`runtime.Engine`, handed down by the composition root), which runs it when the earlier
turns of its session are done and a process slot is free, through :class:`TurnHooks`.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.models import User
from django.db import close_old_connections, transaction

from drivers.claude import LiveSpec
from members import roles
from runtime import Engine, NodeRuntime, StopReason

from .. import dbthreads
from ..live import notify
from ..models import Session, Turn
from . import ahead, attachments, budgets, execution
from .execution import TurnOptions
from .recording import Recorder, refresh_session_status

log = logging.getLogger(__name__)

TOOL_RESULT_KEEP_CHARS = 20_000
TITLE_CHARS = 60


class TurnRefused(Exception):
    """A message that cannot be accepted; the text says why and what to do."""


class RoleRefused(TurnRefused):
    """A viewer sent a message: their role runs nothing (the API answers 403)."""


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
def _save_message(
    engine: Engine,
    session_id: uuid.UUID,
    user: User | None,
    text: str,
    origin: Turn.Origin,
    files: object,
    command: str,
) -> tuple[Turn, Session]:
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
        turn = Turn.objects.create(
            session=session, author=user, prompt=text, attachments=attached, origin=origin, command=command
        )
        # An engine whose queue is in the database queues it in this transaction: saved means queued.
        engine.queue_in_transaction(turn=turn.pk, session=str(session_id), owner=session.owner_id)
        if not session.title:
            session.title = title_from(text)
            session.save(update_fields=["title"])
        session = refresh_session_status(session_id, session=session)
    return turn, session


async def submit_message(
    *,
    engine: Engine,
    session_id: uuid.UUID,
    user: User | None,
    text: str,
    origin: Turn.Origin = Turn.Origin.PAGE,
    files: object = None,
    command: str = "",
) -> Turn:
    """Save the message as a queued turn (before any CLI runs), submit it to the engine, and show it.

    ``origin``: where it came from, which says how it runs (see :func:`execution.options_for`).
    ``files``: the attachments it names (paths :func:`attachments.save` returned), checked here.
    ``command``: the name of the slash command the person chose from the menu
    (:func:`chat.services.slash.chosen` found it offered): the turn runs it as that command.

    Saving and submitting finish even if the caller goes away meanwhile: a turn that is saved is
    always submitted (never left "queued" with nothing to run it)."""
    text = validate_message(text)
    if user is not None and not await sync_to_async(roles.may_run)(user):
        raise RoleRefused(roles.VIEWER_REFUSAL)
    if user is not None:
        waiting = await engine.waiting_for(owner=user.pk)
        limit = settings.CLAUDE_MAX_QUEUED_PER_MEMBER
        if waiting >= limit:
            raise TurnRefused(
                f"You have {waiting} messages waiting to run (the limit is {limit}), so this one was not "
                "sent. Wait for one to finish, or cancel one, then send it again."
            )
    return await asyncio.shield(_save_submit_show(engine, session_id, user, text, origin, files, command))


async def _save_submit_show(
    engine: Engine,
    session_id: uuid.UUID,
    user: User | None,
    text: str,
    origin: Turn.Origin,
    files: object,
    command: str,
) -> Turn:
    turn, session = await _save_message(engine, session_id, user, text, origin, files, command)
    try:
        # Shown before it is submitted: once submitted it may start at once, and a page must have the
        # turn before the fragment that says it runs (that one replaces the turn's status in place).
        await notify.turn_added(turn, session, listed=False)
    finally:
        await queue_turn(engine=engine, turn=turn, owner_id=session.owner_id)
    # The member's list of chats after it (not on the message's way to the CLI): it is rendered
    # from the database when sent, so it shows the chat as it is then.
    await notify.chats_changed(session)
    return turn


async def queue_turn(*, engine: Engine, turn: Turn, owner_id: int | None, options: TurnOptions | None = None) -> None:
    """Submit a saved turn, behind its session's earlier ones (whoever sent them). ``options``: how it
    runs, for a turn that cannot say by its origin alone (a task's, run within its task's run)."""
    await engine.submit(turn=turn.pk, session=str(turn.session_id), owner=owner_id, local=options)


async def stop_turn(*, engine: Engine, session_id: uuid.UUID) -> bool:
    """Stop the running turn of a session, if one runs."""
    return await engine.stop(session=str(session_id))


async def cancel_turn(*, engine: Engine, session_id: uuid.UUID, turn_id: int) -> bool:
    """Cancel a turn that waits (queued behind others, or for a process slot): it never runs and
    stays in the chat as cancelled. False if it runs or has ended."""
    return await engine.withdraw(session=str(session_id), turn=turn_id, note="Cancelled before it ran.")


async def withdraw_turn(*, engine: Engine, turn: Turn, reason: str) -> bool:
    """Take back a turn that has not started: it never runs, and stays in the chat as stopped
    with ``reason``. False if it has started (or ended) meanwhile."""
    return await engine.withdraw(session=str(turn.session_id), turn=turn.pk, note=reason)


# ---------------------------------------------------------------------------------------
# How the engine runs a saved turn


class TurnHooks:
    """What the engine calls for a saved turn, by its id (see :class:`runtime.TurnHooks`)."""

    async def waiting(self, turn: int) -> None:
        await (await _recorder(turn)).waiting()

    async def run(self, turn: int, *, node: NodeRuntime, local: object) -> None:
        try:
            recorder = await _recorder(turn)
            # Checked as it is about to run: the budget may have run out while it waited.
            refused = await sync_to_async(budgets.refusal_for_session)(recorder.turn.session)
            if refused is not None:
                await recorder.finish(Turn.Status.ERROR, error=refused)
                return
            try:
                options = local if isinstance(local, TurnOptions) else execution.options_for(recorder.turn)
            except execution.TaskTurnAlone as exc:
                await recorder.finish(Turn.Status.ERROR, error=str(exc))
                return
            await execution.execute(recorder=recorder, options=options, node=node)
        finally:
            # The engine's thread keeps no database connection between turns.
            await asyncio.shield(sync_to_async(close_old_connections)())

    async def dropped(self, turn: int, *, reason: StopReason, note: str) -> None:
        recorder = await _recorder(turn)
        if reason == StopReason.SHUTDOWN:
            await recorder.finish(Turn.Status.INTERRUPTED, error=INTERRUPTED_BEFORE_START)
        else:
            await recorder.finish(Turn.Status.STOPPED, error=note if reason == StopReason.WITHDRAWN else "")

    async def spec_ahead(self, session: str, *, owner: int, draft: object, node: NodeRuntime) -> LiveSpec | None:
        return await ahead.spec_ahead_async(session_id=session, owner_id=owner, new=draft, egress=node.egress)


# The engine's worker for a chat runs in a new thread whenever the chat's queue starts again: the
# turn it is handed is read in a thread that keeps its database connection instead, so that a
# follow-up does not open one on its way to the CLI (its later writes open the worker's own, once
# the CLI has the message).
_reads = dbthreads.threads(count=1, name="turn-db")


def _turn(turn: int) -> Turn:
    return Turn.objects.select_related("session").get(pk=turn)


_read_turn = dbthreads.run_in(_reads, _turn)


async def _recorder(turn: int) -> Recorder:
    return Recorder(await _read_turn(turn))


INTERRUPTED_BEFORE_START = "The server shut down before this turn ran. Send the message again."
