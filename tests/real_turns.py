"""Helpers for tests that run real turns and then work on their transcripts."""

from __future__ import annotations

from datetime import timedelta

from asgiref.sync import sync_to_async
from django.utils import timezone

import runtime
from chat.models import Event, Session, Turn
from chat.services import turns
from tests.factories import make_session


async def say(*, session: Session, user, text: str) -> Turn:
    """Send a message through the real runner and CLI, and wait until it has finished."""
    turn = (await turns.submit_message(session_id=session.id, user=user, text=text)).turn
    await runtime.current().turns.idle()
    turn = await Turn.objects.aget(pk=turn.pk)
    assert turn.status == Turn.Status.DONE, turn.error
    return turn


async def new_chat(*, user, text: str | None = None) -> Session:
    session = await sync_to_async(make_session)(owner=user)
    if text is not None:
        await say(session=session, user=user, text=text)
    return await Session.objects.aget(pk=session.pk)


async def answer_of(turn: Turn) -> str:
    return "\n".join([e.text async for e in Event.objects.filter(turn=turn, kind=Event.Kind.TEXT)])


def age(session: Session, *, hours: float) -> None:
    Session.objects.filter(pk=session.pk).update(last_activity_at=timezone.now() - timedelta(hours=hours))


async def closed(session: Session) -> None:
    """Close the chat's warm CLI process and wait until it has exited (the CLI writes its
    transcript's last entries as it exits), as archiving does before it packs the transcript."""
    warm = runtime.current().warm
    warm.drop(str(session.id))
    await warm.idle()
