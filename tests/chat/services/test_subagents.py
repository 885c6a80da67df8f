"""A subagent's own tool calls, with the REAL Claude Code CLI against the offline stand-in: recorded
under its Agent call and shown nested in that call's card, on the live page and on a reload."""

from __future__ import annotations

from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.template.loader import render_to_string

from chat.live import fragments
from chat.models import Event, Turn
from tests.factories import make_session, make_user
from tests.real_turns import say

pytestmark = [pytest.mark.django_db(transaction=True)]


async def test_a_subagents_tool_call_nests_under_its_agent_card(claude_env, rt):
    user = await sync_to_async(make_user)()
    chat = await sync_to_async(make_session)(owner=user)
    (Path(chat.workdir) / "notes.txt").write_text("hello from the notes\n")
    turn = await say(engine=rt, session=chat, user=user, text="delegate: read notes.txt")
    agent = await Event.objects.aget(turn=turn, kind=Event.Kind.TOOL_USE, name="Agent")
    read = await Event.objects.aget(turn=turn, kind=Event.Kind.TOOL_USE, name="Read")
    assert read.data["parent"] == agent.data["id"]
    result = await Event.objects.aget(turn=turn, kind=Event.Kind.TOOL_RESULT, data__tool_use_id=read.data["id"])
    assert result.data["parent"] == agent.data["id"] and "hello from the notes" in result.text

    # Live: the subagent's call goes into its Agent card; on a reload it is rendered there.
    live = await sync_to_async(fragments.event_appended)(read)
    assert f'hx-swap-oob="beforeend:#subagent-{agent.data["id"]}"' in live
    whole = await sync_to_async(_render)(turn.pk)
    card = whole.split(f'id="subagent-{agent.data["id"]}"', 1)[1].split("</article>", 1)[0]
    assert f'id="event-{read.pk}"' in card and f'id="event-{result.pk}"' in card
    assert whole.count(f'id="event-{read.pk}"') == 1


def _render(turn_id: int) -> str:
    turn = Turn.objects.select_related("session").prefetch_related("events").get(pk=turn_id)
    return render_to_string("chat/session.html#turn", {"turn": turn, "session": turn.session})
