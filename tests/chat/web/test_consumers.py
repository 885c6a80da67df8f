"""The chat websocket through the real ASGI application: login, origin, ownership, turns."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from chat.models import Turn
from project.asgi import application_for
from tests.factories import logged_in_client, make_session, make_user, receive_until, ws_headers

pytestmark = [pytest.mark.usefixtures("rt"), pytest.mark.django_db(transaction=True)]


async def connect(rt, path: str, headers) -> tuple[WebsocketCommunicator, bool, int | None]:
    communicator = WebsocketCommunicator(application_for(rt), path, headers=headers)
    connected, code = await communicator.connect()
    return communicator, connected, code


async def owner_and_chat():
    user = await sync_to_async(make_user)()
    chat = await sync_to_async(make_session)(owner=user)
    client = await sync_to_async(logged_in_client)(user=user)
    return user, chat, client


async def test_anonymous_connection_is_refused(fake_cli, rt):
    _user, chat, _client = await owner_and_chat()
    communicator, connected, code = await connect(rt, f"/ws/chat/{chat.id}/", ws_headers())
    assert not connected
    assert code == 4401


async def test_foreign_origin_is_refused(fake_cli, rt):
    _user, chat, client = await owner_and_chat()
    communicator, connected, _code = await connect(
        rt, f"/ws/chat/{chat.id}/", ws_headers(client=client, origin="http://evil.example")
    )
    assert not connected


async def test_someone_elses_chat_is_refused(fake_cli, rt):
    _owner, chat, _client = await owner_and_chat()
    intruder = await sync_to_async(make_user)()
    client = await sync_to_async(logged_in_client)(user=intruder)
    communicator, connected, code = await connect(rt, f"/ws/chat/{chat.id}/", ws_headers(client=client))
    assert not connected
    assert code == 4404


async def test_a_path_in_place_of_a_uuid_matches_no_route(fake_cli, rt):
    _user, _chat, client = await owner_and_chat()
    with pytest.raises(ValueError, match="No route found"):
        await connect(rt, "/ws/chat/..%2F..%2Fetc%2Fpasswd/", ws_headers(client=client))


@pytest.mark.real_cli
async def test_a_message_is_shown_at_once_and_the_answer_streams_back(claude_env, rt):
    user, chat, client = await owner_and_chat()
    communicator, connected, _ = await connect(rt, f"/ws/chat/{chat.id}/", ws_headers(client=client))
    assert connected
    await receive_until(communicator, 'id="turns"')  # the refresh sent on connect

    await communicator.send_to(text_data=json.dumps({"message": "My name is Ada <b>bold</b>", "HEADERS": {}}))
    shown = await receive_until(communicator, "My name is Ada &lt;b&gt;bold&lt;/b&gt;")
    assert "<b>bold</b>" not in shown
    streamed = shown + await receive_until(communicator, " tokens · $")
    assert "Nice to meet you, Ada." in streamed
    await rt.turns.idle()
    turn = await Turn.objects.aget(session=chat)
    assert turn.status == Turn.Status.DONE
    await communicator.disconnect()


async def test_closing_the_socket_does_not_stop_the_turn(fake_cli, rt):
    _user, chat, client = await owner_and_chat()
    communicator, _, _ = await connect(rt, f"/ws/chat/{chat.id}/", ws_headers(client=client))
    await communicator.send_to(text_data=json.dumps({"message": "slow 1"}))
    await receive_until(communicator, "slow 1")
    await communicator.disconnect()
    await rt.turns.idle()
    turn = await Turn.objects.aget(session=chat)
    assert turn.status == Turn.Status.DONE
    assert "(end of slow answer)" in "".join([e.text async for e in turn.events.all()])


async def test_empty_oversized_and_malformed_messages_are_refused_with_a_reason(fake_cli, settings, rt):
    settings.CLAUDE_MAX_MESSAGE_CHARS = 100
    _user, chat, client = await owner_and_chat()
    communicator, _, _ = await connect(rt, f"/ws/chat/{chat.id}/", ws_headers(client=client))
    await receive_until(communicator, 'id="turns"')
    await communicator.send_to(text_data=json.dumps({"message": "   "}))
    assert "Type a message first" in await receive_until(communicator, "flash")
    await communicator.send_to(text_data=json.dumps({"message": "x" * 101}))
    assert "the limit is 100" in await receive_until(communicator, "flash")
    await communicator.send_to(text_data="not json")
    assert "could not read" in await receive_until(communicator, "flash")
    assert not await Turn.objects.filter(session=chat).aexists()
    await communicator.disconnect()


async def test_stop_with_nothing_running_says_so(fake_cli, rt):
    _user, chat, client = await owner_and_chat()
    communicator, _, _ = await connect(rt, f"/ws/chat/{chat.id}/", ws_headers(client=client))
    await receive_until(communicator, 'id="turns"')
    await communicator.send_to(text_data=json.dumps({"action": "stop"}))
    assert "Nothing is running" in await receive_until(communicator, "flash")
    await communicator.disconnect()
