"""Chat turns end to end with the REAL Claude Code CLI against the offline stand-in."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from chat import turns
from chat.models import Event, Session, Turn
from chat.runner import get_runner
from tests.factories import make_session, make_user

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.real_cli]


async def send(session: Session, user, text: str) -> Turn:
    return await turns.submit_message(session_id=session.id, user=user, text=text)


async def answer(turn: Turn) -> str:
    texts = [e.text async for e in Event.objects.filter(turn=turn, kind=Event.Kind.TEXT)]
    return "\n".join(texts)


async def settled(turn: Turn) -> Turn:
    await get_runner().idle()
    return await Turn.objects.aget(pk=turn.pk)


async def test_second_turn_remembers_the_first_and_a_new_chat_does_not(claude_env):
    user = await sync_to_async(make_user)()
    chat = await sync_to_async(make_session)(owner=user)
    first = await settled(await send(chat, user, "My name is Ada"))
    assert first.status == Turn.Status.DONE, first.error
    assert "Nice to meet you, Ada" in await answer(first)
    assert claude_env.transcript(chat.id).exists()
    assert (await Session.objects.aget(pk=chat.id)).cli_created

    second = await settled(await send(chat, user, "What is my name?"))
    assert second.status == Turn.Status.DONE, second.error
    assert "Your name is Ada" in await answer(second)
    assert second.input_tokens > 0 and second.output_tokens > 0 and second.cost_usd > 0

    other = await sync_to_async(make_session)(owner=user)
    fresh = await settled(await send(other, user, "What is my name?"))
    assert "I don't know your name" in await answer(fresh)
