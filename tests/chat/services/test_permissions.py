"""Permission prompts answered in the browser: the real CLI (default mode) asks to write a file,
the chat's pages show Allow / Deny / "Always allow", and the answer decides what happens. Who sees
and answers a prompt is the app's alone: those tests ask on the stand-in process (tests/fake_session.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from chat.models import Event, Session, Turn
from project.asgi import application_for
from tests.factories import logged_in_client, make_session, make_user, receive_until, ws_headers

pytestmark = [pytest.mark.usefixtures("rt"), pytest.mark.django_db(transaction=True)]

BUTTONS = ("Allow", "Deny", "Always allow Write in this chat")


async def chat_page(rt, user=None, session: Session | None = None):
    """A logged-in tab of a (new) chat, after the refresh sent on connect."""
    user = user or await sync_to_async(make_user)()
    session = session or await sync_to_async(make_session)(owner=user)
    client = await sync_to_async(logged_in_client)(user=user)
    tab = WebsocketCommunicator(application_for(rt), f"/ws/chat/{session.id}/", headers=ws_headers(client=client))
    connected, _ = await tab.connect(timeout=10)  # (the first socket of a run joins Redis in cluster mode)
    assert connected
    await receive_until(tab, 'id="turns"')
    return user, session, tab


async def send(tab: WebsocketCommunicator, **frame: object) -> None:
    await tab.send_to(text_data=json.dumps(frame))


async def say(tab: WebsocketCommunicator, text: str) -> None:
    """Send a message and wait until the page shows it (the turn is saved)."""
    await send(tab, message=text)
    await receive_until(tab, text)


async def prompt_of(tab: WebsocketCommunicator) -> tuple[int, str]:
    """Wait for a prompt with its buttons; its event id and its HTML."""
    html = await receive_until(tab, "Always allow")
    match = re.search(r'"event": (\d+), "answer": "allow"', html)
    assert match, html
    return int(match.group(1)), html


async def finished(rt, session: Session) -> Turn:
    await rt.idle()
    return await Turn.objects.filter(session=session).alatest("id")


async def test_allow_runs_the_tool_and_the_page_says_who_allowed_it(claude_env, rt):
    user, session, tab = await chat_page(rt)
    await say(tab, "write notes.txt: hello")
    event_id, html = await prompt_of(tab)
    for name in BUTTONS:
        assert f">{name}</button>" in html
    assert "Claude Code asks to use" in html and "notes.txt" in html
    await receive_until(tab, "Waiting for an answer")
    assert (await Turn.objects.aget(session=session)).status == Turn.Status.ASKING

    await send(tab, action="permission", event=event_id, answer="allow")
    assert f"Allowed by {user.username}." in await receive_until(tab, "Allowed by")
    turn = await finished(rt, session)
    assert turn.status == Turn.Status.DONE, turn.error
    assert (Path(session.workdir) / "notes.txt").read_text() == "hello\n"
    await tab.disconnect()


async def test_deny_refuses_the_call_and_the_agent_reads_why(claude_env, stub_api, rt):
    user, session, tab = await chat_page(rt)
    await say(tab, "write notes.txt: hello")
    event_id, _ = await prompt_of(tab)
    await send(tab, action="permission", event=event_id, answer="deny")
    assert f"Denied by {user.username}." in await receive_until(tab, "Denied by")
    turn = await finished(rt, session)
    assert turn.status == Turn.Status.DONE
    assert not (Path(session.workdir) / "notes.txt").exists()
    result = await Event.objects.filter(turn=turn, kind=Event.Kind.TOOL_RESULT).afirst()
    assert result is not None and result.is_error and "denied this tool call" in result.text
    # Kept, but shown once: the prompt says "Denied"; the call's card came just before the prompt.
    assert result.data["denied_in_prompt"] is True
    prompt = await Event.objects.aget(pk=event_id)
    call = await Event.objects.filter(turn=turn, kind=Event.Kind.TOOL_USE).afirst()
    assert prompt.data["tool_use_id"] == call.data["id"] and prompt.data["card_above"] is True
    assert "in_prompt" not in call.data
    await tab.disconnect()


async def test_a_prompt_nobody_answers_is_denied_after_the_timeout(claude_env, settings, rt):
    settings.CLAUDE_PERMISSION_TIMEOUT = 1
    _user, session, tab = await chat_page(rt)
    await say(tab, "write notes.txt: hello")
    await prompt_of(tab)
    assert "Nobody answered in time" in await receive_until(tab, "Nobody answered")
    turn = await finished(rt, session)
    assert turn.status == Turn.Status.DONE
    assert not (Path(session.workdir) / "notes.txt").exists()
    result = await Event.objects.filter(turn=turn, kind=Event.Kind.TOOL_RESULT).afirst()
    assert result is not None and "within 1 seconds" in result.text
    await tab.disconnect()


async def test_every_tab_sees_the_prompt_the_first_answer_wins_and_the_others_update(fake_cli, rt):
    user, session, first = await chat_page(rt)
    _, _, second = await chat_page(rt, user, session)
    await say(first, "write notes.txt: hello")
    event_id, _ = await prompt_of(first)
    assert (await prompt_of(second))[0] == event_id
    # What is saved of the prompt is what the pages show: nothing of who waits for the answer, or where.
    saved = await Event.objects.aget(pk=event_id)
    assert set(saved.data) == {"tool", "input", "suggestions", "status", "tool_use_id", "card_above"}

    await send(second, action="permission", event=event_id, answer="allow")
    await receive_until(first, f"Allowed by {user.username}.")  # the first tab updates without a reload
    await send(first, action="permission", event=event_id, answer="deny")
    assert "answered already" in await receive_until(first, "answered already")
    turn = await finished(rt, session)
    assert turn.status == Turn.Status.DONE
    assert (Path(session.workdir) / "notes.txt").exists()
    await first.disconnect()
    await second.disconnect()


async def test_always_allow_lets_later_calls_of_that_tool_run_without_asking(fake_cli, rt):
    _user, session, tab = await chat_page(rt)
    await say(tab, "write one.txt: 1")
    event_id, _ = await prompt_of(tab)
    await send(tab, action="permission", event=event_id, answer="always")
    assert "Always allowed in this chat" in await receive_until(tab, "Always allowed")
    await finished(rt, session)
    assert (await Session.objects.aget(pk=session.pk)).always_allowed == ["Write"]

    await say(tab, "write two.txt: 2")
    turn = await finished(rt, session)
    assert turn.status == Turn.Status.DONE
    assert (Path(session.workdir) / "two.txt").read_text() == "2\n"
    assert not await Event.objects.filter(turn=turn, kind=Event.Kind.PERMISSION).aexists()
    await tab.disconnect()


async def test_someone_else_cannot_answer_a_prompt_of_a_chat_that_is_not_theirs(fake_cli, rt):
    _user, session, tab = await chat_page(rt)
    _intruder, _theirs, other_tab = await chat_page(rt)
    await say(tab, "write notes.txt: hello")
    event_id, _ = await prompt_of(tab)
    await send(other_tab, action="permission", event=event_id, answer="allow")
    assert "not yours to answer" in await receive_until(other_tab, "not yours")
    await send(tab, action="permission", event=event_id, answer="deny")
    await finished(rt, session)
    assert not (Path(session.workdir) / "notes.txt").exists()
    await tab.disconnect()
    await other_tab.disconnect()


async def test_a_malformed_answer_gets_a_notice(fake_cli, rt):
    _user, _session, tab = await chat_page(rt)
    await send(tab, action="permission", event="x", answer="maybe")
    assert "could not read" in await receive_until(tab, "flash")
    await tab.disconnect()


async def test_stop_while_asking_closes_the_prompt_and_keeps_the_process(claude_env, rt):
    _user, session, tab = await chat_page(rt)
    await say(tab, "write notes.txt: hello")
    await prompt_of(tab)
    pid = (await Turn.objects.aget(session=session)).pid
    await send(tab, action="stop")
    assert "No longer asked" in await receive_until(tab, "No longer asked")
    turn = await finished(rt, session)
    assert turn.status == Turn.Status.STOPPED
    assert not (Path(session.workdir) / "notes.txt").exists()

    await say(tab, "my name is Ada")
    later = await finished(rt, session)
    assert later.status == Turn.Status.DONE and later.pid == pid  # the same warm process
    await tab.disconnect()
