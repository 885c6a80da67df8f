"""The New chat page's socket: the chat's process starts while its member types, the first message
makes the chat (with the page's id) and the chat comes in place of the page over the same socket;
a chat page's first keystroke starts its process ahead the same way."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from chat import projects
from chat.models import Session, Turn
from project.asgi import application_for
from tests.factories import logged_in_client, make_session, make_user, receive_until, ws_headers

pytestmark = [pytest.mark.usefixtures("rt"), pytest.mark.django_db(transaction=True)]


async def member_with_folder():
    user = await sync_to_async(make_user)()
    projects.own_folder(user).mkdir(parents=True, exist_ok=True)
    return user, await sync_to_async(logged_in_client)(user=user)


async def open_socket(rt, path: str, client) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application_for(rt), path, headers=ws_headers(client=client))
    connected, code = await communicator.connect()
    assert connected, code
    return communicator


async def until_started(rt, session_id: uuid.UUID) -> None:
    while not rt.node.warm.has(str(session_id)) or str(session_id) in rt.node.warm._starting:
        await asyncio.sleep(0.01)


async def test_typing_starts_the_process_and_the_first_message_makes_the_chat_in_place(fake_cli, rt):
    user, client = await member_with_folder()
    new_id = uuid.uuid4()
    page = await open_socket(rt, f"/ws/chat/new/{new_id}/", client)
    await page.send_to(text_data=json.dumps({"action": "typing", "project": ""}))
    await until_started(rt, new_id)
    assert len(fake_cli.started) == 1 and fake_cli.started[0].spec.session_id == str(new_id)
    assert not await Session.objects.filter(pk=new_id).aexists()  # nothing saved until the message

    await page.send_to(text_data=json.dumps({"message": "echo: hello there", "csrfmiddlewaretoken": "a" * 64}))
    swapped = await receive_until(page, 'hx-swap-oob="innerHTML:#chat"')
    assert f'data-chat-url="/chat/{new_id}/"' in swapped and "echo: hello there" in swapped
    assert 'id="message-form"' in swapped and "a" * 64 in swapped  # the chat's own message box, its form token
    answered = await receive_until(page, "hello there</p>")
    assert "Running" in answered or "hello there" in answered
    await rt.turns.idle()
    turn = await Turn.objects.select_related("session").aget(session_id=new_id)
    assert turn.status == Turn.Status.DONE and turn.session.owner_id == user.pk
    # The process started ahead was the turn's: no second one.
    assert len(fake_cli.started) == 1 and fake_cli.started[0].turns == 1

    # The socket is the chat's now: a follow-up goes into the same chat, also after a reconnect.
    await page.send_to(text_data=json.dumps({"message": "echo: again"}))
    await receive_until(page, "again</p>")
    await page.disconnect()
    again = await open_socket(rt, f"/ws/chat/new/{new_id}/", client)
    assert "echo: again" in await receive_until(again, 'id="turns"')
    await again.disconnect()
    assert await Turn.objects.filter(session_id=new_id).acount() == 2


async def test_a_process_started_ahead_that_no_message_takes_is_closed(fake_cli, rt):
    rt.prewarm_seconds = 0.2
    _user, client = await member_with_folder()
    new_id = uuid.uuid4()
    page = await open_socket(rt, f"/ws/chat/new/{new_id}/", client)
    await page.send_to(text_data=json.dumps({"action": "typing"}))
    await until_started(rt, new_id)
    while fake_cli.alive:
        await asyncio.sleep(0.02)
    assert not rt.node.warm.has(str(new_id))
    # The id is still free: the first message starts the chat's process anew.
    await page.send_to(text_data=json.dumps({"message": "echo: later"}))
    await receive_until(page, "later</p>")
    await rt.turns.idle()
    assert (await Turn.objects.aget(session_id=new_id)).status == Turn.Status.DONE
    await page.disconnect()


async def test_another_members_chat_id_is_refused_and_starts_nothing(fake_cli, rt):
    owner = await sync_to_async(make_user)()
    chat = await sync_to_async(make_session)(owner=owner)
    _intruder, client = await member_with_folder()
    communicator = WebsocketCommunicator(
        application_for(rt), f"/ws/chat/new/{chat.id}/", headers=ws_headers(client=client)
    )
    connected, code = await communicator.connect()
    assert not connected and code == 4404
    assert not fake_cli.started


async def test_a_chat_pages_first_keystroke_starts_its_process_within_the_members_share(fake_cli, rt):
    user, client = await member_with_folder()
    chats = [await sync_to_async(make_session)(owner=user) for _ in range(3)]
    for chat in chats:
        page = await open_socket(rt, f"/ws/chat/{chat.id}/", client)
        await receive_until(page, 'id="turns"')
        await page.send_to(text_data=json.dumps({"action": "typing"}))
        # (Its answer says the frame before it was read.)
        await page.send_to(text_data=json.dumps({"action": "stop"}))
        await receive_until(page, "Nothing is running")
        await page.disconnect()
    while rt.node.warm._starting:
        await asyncio.sleep(0.01)
    # At most two processes started ahead and not yet used, per member.
    assert len(fake_cli.started) == 2

    # The chat's message takes its process: no second start.
    page = await open_socket(rt, f"/ws/chat/{chats[0].id}/", client)
    await receive_until(page, 'id="turns"')
    await page.send_to(text_data=json.dumps({"message": "echo: warm already"}))
    await receive_until(page, "warm already</p>")
    await rt.turns.idle()
    assert len(fake_cli.started) == 2 and fake_cli.started[0].turns == 1
    await page.disconnect()


@pytest.mark.real_cli
async def test_the_real_cli_started_ahead_answers_and_one_closed_unused_leaves_the_id_free(claude_env, rt):
    # The CLI writes no transcript for --session-id before the first message: a process that never
    # got one does not burn the id, and one that did get it is the chat's, with its memory.
    _user, client = await member_with_folder()
    unused, used = uuid.uuid4(), uuid.uuid4()
    rt.prewarm_seconds = 1.0
    page = await open_socket(rt, f"/ws/chat/new/{unused}/", client)
    await page.send_to(text_data=json.dumps({"action": "typing"}))
    await until_started(rt, unused)
    while rt.node.warm.has(str(unused)):
        await asyncio.sleep(0.05)
    await rt.node.warm.idle()
    await page.send_to(text_data=json.dumps({"message": "My name is Ada"}))
    assert "Nice to meet you, Ada." in await receive_until(page, "Nice to meet you, Ada.")
    await page.disconnect()

    rt.prewarm_seconds = 60.0
    started = rt.node.warm.started
    page = await open_socket(rt, f"/ws/chat/new/{used}/", client)
    await page.send_to(text_data=json.dumps({"action": "typing"}))
    await until_started(rt, used)
    await page.send_to(text_data=json.dumps({"message": "My name is Grace"}))
    await receive_until(page, "Nice to meet you, Grace.")
    await rt.turns.idle()
    await page.send_to(text_data=json.dumps({"message": "What is my name?"}))
    await receive_until(page, "Your name is Grace.")
    await rt.turns.idle()
    assert rt.node.warm.started == started + 1  # the one started ahead served both turns
    assert claude_env.transcript(await Session.objects.aget(pk=used)).exists()
    await page.disconnect()
