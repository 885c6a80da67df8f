"""Permission prompts answered by people: a tool call the permission mode does not allow by itself
waits for Allow, Deny or "Always allow <tool> in this chat" from the chat's page (any tab of its
owner: the first answer wins, the others see it), or is denied after CLAUDE_PERMISSION_TIMEOUT.

The request is an :class:`~chat.models.Event` of the turn (kind "permission"); the answer reaches
the waiting turn through the channel layer (the group of the turn's prompts, which the waiting
turn joins before it asks), so the page and the turn need not be in one process, and nothing about
who waits is saved with the prompt.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User
from django.db import transaction
from django.utils import timezone

from drivers.claude import Permission
from members import roles

from ..live import notify
from ..models import Event, Session, Turn
from .recording import Recorder

ANSWER_MESSAGE = "permission.answer"
TIMED_OUT = (
    "Nobody answered the permission prompt within {seconds:g} seconds, so the call was denied. "
    "Say what to do instead, or ask again when someone can answer."
)
DENIED = "The person denied this tool call. Ask what they want instead."


class Answer(enum.StrEnum):
    ALLOW = "allow"
    DENY = "deny"
    ALWAYS = "always"


class PromptRefused(Exception):
    """An answer that cannot be taken; the text says why."""


async def ask(
    *,
    recorder: Recorder,
    tool: str,
    tool_input: dict[str, Any],
    suggestions: list[dict[str, Any]],
    tool_use_id: str = "",
    on_open: Callable[[], Awaitable[None]] | None = None,
) -> Permission:
    """Show the prompt on the chat's pages and wait for a person's answer (or the timeout)."""
    layer = get_channel_layer()
    if layer is None:
        return Permission(allow=False, message="The server has no channel layer, so nobody can be asked.")
    # Joined before the prompt exists: an answer given the moment the page shows it waits here.
    reply = await layer.new_channel()
    group = prompts_group(recorder.turn.pk)
    await layer.group_add(group, reply)
    data: dict[str, Any] = {"tool": tool, "input": tool_input, "suggestions": suggestions, "status": "pending"}
    if tool_use_id:
        # The call's card shows once: in the prompt, unless the call was shown just before it. Which
        # one shows it is settled here, with no wait between the look and the claim: the call's
        # event may be recorded while the prompt is being saved (streamed.record looks the same way).
        card_above = tool_use_id in recorder.tool_names
        if not card_above:
            recorder.prompted.add(tool_use_id)
        data.update(tool_use_id=tool_use_id, card_above=card_above)
    seconds = settings.CLAUDE_PERMISSION_TIMEOUT
    try:
        event = await recorder.ask(name=tool, data=data)
        if on_open is not None:
            await on_open()
        answer = await _wait_for_answer(layer, reply, event.pk, seconds)
    finally:
        await asyncio.shield(layer.group_discard(group, reply))
    await recorder.resume()
    if answer is None:
        return Permission(allow=False, message=TIMED_OUT.format(seconds=seconds))
    if answer == Answer.DENY:
        return Permission(allow=False, message=DENIED)
    return Permission(allow=True, always=answer == Answer.ALWAYS)


async def _wait_for_answer(layer: Any, reply: str, event_id: int, seconds: float) -> Answer | None:
    """A person's answer to the open prompt ``event_id``; None after ``seconds`` (the prompt then
    says it timed out). A Stop while it waits closes the prompt as cancelled."""
    try:
        return await asyncio.wait_for(_answer_to(layer, reply, event_id), seconds)
    except TimeoutError:
        await _close(event_id, status="timed_out")
        return None
    except asyncio.CancelledError:
        # Closed and shown in one shielded step: cancelled again meanwhile (the turn ending under
        # it), two steps left the prompt closed in the database and still open on the pages.
        await asyncio.shield(_close(event_id, status="cancelled"))
        raise


async def _close(event_id: int, *, status: str) -> None:
    """Close the prompt ``event_id`` unanswered (``status``) and show it so, if it was still open."""
    if await _settle(event_id, status=status, by=None):
        await _show(event_id)


async def close_open(*, turn_id: int) -> None:
    """The turn has ended: its prompts still open are no longer asked, on the pages too (the CLI
    does not always withdraw a question when a Stop interrupts the turn)."""
    pending = Event.objects.filter(turn_id=turn_id, kind=Event.Kind.PERMISSION, data__status="pending")
    async for event in pending.only("pk"):
        await _close(event.pk, status="cancelled")


def prompts_group(turn_id: int) -> str:
    """Where the answers to a turn's prompts go: the turn's waiting prompts listen there."""
    return f"prompts-{int(turn_id)}"


async def _answer_to(layer: Any, reply: str, event_id: int) -> Answer:
    """The answer to the prompt ``event_id`` (answers to the turn's other prompts are theirs)."""
    while True:
        message = await layer.receive(reply)
        if message.get("event") == event_id:
            return Answer(message.get("answer"))


async def answer(*, event_id: int, answer: Answer, user: User) -> None:
    """Take a person's answer to a prompt of their chat (the first answer wins)."""
    turn_id = await _answer(event_id, answer, user)
    await _show(event_id)
    layer = get_channel_layer()
    if layer is not None:
        await layer.group_send(
            prompts_group(turn_id), {"type": ANSWER_MESSAGE, "event": event_id, "answer": str(answer)}
        )


@sync_to_async
def _answer(event_id: int, answer: Answer, user: User) -> int:
    event = Event.objects.select_related("turn__session").filter(pk=event_id, kind=Event.Kind.PERMISSION).first()
    if event is None or not may_answer(user=user, session=event.turn.session):
        raise PromptRefused("That permission prompt is not yours to answer.")
    status = {Answer.ALLOW: "allowed", Answer.ALWAYS: "allowed", Answer.DENY: "denied"}[answer]
    if not _settle_sync(event_id, status=status, by=user.get_username(), always=answer == Answer.ALWAYS):
        raise PromptRefused("That prompt was answered already (in another tab, or it timed out).")
    if answer == Answer.ALWAYS:
        with transaction.atomic():
            session = Session.objects.select_for_update().get(pk=event.turn.session_id)
            tool = str(event.data.get("tool", ""))
            if tool and tool not in session.always_allowed:
                session.always_allowed = [*session.always_allowed, tool]
                session.save(update_fields=["always_allowed"])
    return event.turn_id


def may_answer(*, user: AbstractBaseUser | AnonymousUser, session: Session) -> bool:
    # Allowing a tool call runs it: a viewer answers none (their old chats and tasks included).
    return session.answerable_by(user) and roles.may_run(user)


def _settle_sync(event_id: int, *, status: str, by: str | None, always: bool = False) -> bool:
    """Mark a pending prompt answered; False if it was not pending any more."""
    with transaction.atomic():
        event = Event.objects.select_for_update().filter(pk=event_id).first()
        if event is None or event.data.get("status") != "pending":
            return False
        event.data = {
            **event.data,
            "status": status,
            "by": by,
            "always": always,
            "answered_at": timezone.now().isoformat(),
        }
        event.complete = True
        event.save(update_fields=["data", "complete"])
        return True


_settle = sync_to_async(_settle_sync)


async def _show(event_id: int) -> None:
    event = await Event.objects.select_related("turn").aget(pk=event_id)
    await notify.event_changed(event, event.turn.session_id)


def cancel_open(turn: Turn) -> None:
    """The turn ended without its process (a restart): its open prompts are no longer asked."""
    for event in Event.objects.filter(turn=turn, kind=Event.Kind.PERMISSION, data__status="pending"):
        _settle_sync(event.pk, status="cancelled", by=None)
