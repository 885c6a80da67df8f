"""Plan mode with the REAL Claude Code CLI against the offline stand-in: the agent plans and writes
nothing; its plan (ExitPlanMode's call, which the CLI fills from its plan file) shows as a card, and
"Run this plan" leaves plan mode on the same warm process and carries it out."""

from __future__ import annotations

from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.template.loader import render_to_string

from chat.models import Event, Session, Turn
from chat.services import plans, turns
from tests.factories import make_session, make_user
from tests.processes import running

pytestmark = [pytest.mark.django_db(transaction=True)]


async def settled(rt, turn: Turn) -> Turn:
    await rt.turns.idle()
    return await Turn.objects.aget(pk=turn.pk)


async def test_plan_mode_writes_nothing_then_run_this_plan_edits_on_the_same_process(claude_env, rt, settings):
    settings.CLAUDE_PERMISSION_MODE = "acceptEdits"  # once the plan runs, edits go through unasked
    user = await sync_to_async(make_user)()
    chat = await sync_to_async(make_session)(owner=user)
    chat = await sync_to_async(plans.set_plan_mode)(session=chat, on=True)
    planned = await settled(
        rt, await turns.submit_message(engine=rt, session_id=chat.id, user=user, text="write notes.txt: hello")
    )
    assert planned.status == Turn.Status.DONE, planned.error
    assert not (Path(chat.workdir) / "notes.txt").exists()
    card = await Event.objects.aget(turn=planned, kind=Event.Kind.TOOL_USE, name="ExitPlanMode")
    assert "Do what was asked: write notes.txt: hello" in card.data["input"]["plan"]
    # Not a permission prompt: the plan's card, with its button, and no error shown for the call.
    assert not await Event.objects.filter(turn=planned, kind=Event.Kind.PERMISSION).aexists()
    html = await sync_to_async(render_to_string)("chat/session.html#event", {"event": card})
    assert "Run this plan" in html and "Do what was asked" in html

    went = await plans.run_plan(engine=rt, session_id=chat.id, user=user, event_id=card.pk)
    went = await settled(rt, went)
    assert went.status == Turn.Status.DONE, went.error
    assert went.prompt == plans.RUN_PLAN_MESSAGE
    assert (Path(chat.workdir) / "notes.txt").read_text() == "hello\n"
    assert went.pid == planned.pid and running(planned.pid)
    assert not (await Session.objects.aget(pk=chat.pk)).plan_mode

    # Pressed again (another tab): said, and nothing runs.
    with pytest.raises(plans.PlanRefused, match="run already"):
        await plans.run_plan(engine=rt, session_id=chat.id, user=user, event_id=card.pk)
