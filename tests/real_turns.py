"""Helpers for tests that run real turns and then work on their transcripts."""

from __future__ import annotations

from datetime import timedelta

from asgiref.sync import sync_to_async
from django.utils import timezone

from chat.models import Event, Session, Turn
from chat.services import turns
from runtime import LocalEngine
from tests.factories import make_session


async def say(*, engine: LocalEngine, session: Session, user, text: str) -> Turn:
    """Send a message through the engine (and the CLI it runs), and wait until it has finished."""
    turn = await turns.submit_message(engine=engine, session_id=session.id, user=user, text=text)
    await engine.turns.idle()
    turn = await Turn.objects.aget(pk=turn.pk)
    assert turn.status == Turn.Status.DONE, turn.error
    return turn


async def new_chat(*, engine: LocalEngine | None = None, user, text: str | None = None) -> Session:
    session = await sync_to_async(make_session)(owner=user)
    if text is not None:
        assert engine is not None, "a first message needs the engine that runs it"
        await say(engine=engine, session=session, user=user, text=text)
    return await Session.objects.aget(pk=session.pk)


async def answer_of(turn: Turn) -> str:
    return "\n".join([e.text async for e in Event.objects.filter(turn=turn, kind=Event.Kind.TEXT)])


def age(session: Session, *, hours: float) -> None:
    Session.objects.filter(pk=session.pk).update(last_activity_at=timezone.now() - timedelta(hours=hours))


async def closed(engine: LocalEngine, session: Session) -> None:
    """Close the chat's warm CLI process and wait until it has exited (the CLI writes its
    transcript's last entries as it exits), as archiving does before it packs the transcript."""
    warm = engine.node.warm
    warm.drop(str(session.id))
    await warm.idle()
