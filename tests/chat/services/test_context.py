"""How full a chat's context window is, with the REAL Claude Code CLI against the offline stand-in:
the tokens of the model's latest request against the window the CLI reports for its model, shown
on the chat's page; a compaction says what it did and the meter drops."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async

from chat.live import fragments
from chat.models import Event, Session
from tests.factories import make_session, make_user
from tests.real_turns import say

pytestmark = [pytest.mark.django_db(transaction=True)]


async def test_the_context_meter_shows_how_full_the_window_is(claude_env, rt, stub_api):
    user = await sync_to_async(make_user)()
    chat = await sync_to_async(make_session)(owner=user)
    asked = len(stub_api.requests)
    await say(engine=rt, session=chat, user=user, text="my name is Ada")
    chat = await Session.objects.aget(pk=chat.pk)
    # The stand-in counts a request's input as its size / 4; the CLI names its model's window.
    sent = max(1, len(json.dumps(stub_api.requests[asked]["body"])) // 4)
    assert chat.context_tokens and abs(chat.context_tokens - sent) < sent // 10
    assert chat.context_window and chat.context_window >= 100_000
    html = await sync_to_async(fragments.context_meter)(chat)
    assert f"Context {chat.context_percent}%" in html
    assert f"{chat.context_tokens:,} of {chat.context_window:,} tokens" in html
    assert not await Event.objects.filter(turn__session=chat, name="compacted").aexists()
