"""The chat websocket through the real ASGI application: login, origin, ownership, turns."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.utils import timezone

from chat.live import fragments, notify
from chat.models import Event, ShareLink, Turn
from chat.services import sharing
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


# ---------------------------------------------------------------------------------------
# A share link's socket: that one chat, rendered for a reader, nothing it could send


async def shared_chat(workdir, *, expires_in: timedelta | None = None):
    """A chat in ``workdir`` with a live share link (or one that expires after ``expires_in``); its token."""
    owner = await sync_to_async(make_user)()
    chat = await sync_to_async(make_session)(owner=owner, title="Shared notes", workdir=workdir)
    _link, token = await sync_to_async(sharing.create_share_link)(session=chat, user=owner, expires_in=expires_in)
    return owner, chat, token


async def test_a_share_socket_follows_its_chat_as_a_reader_sees_it_and_nothing_else(claude_env, rt):
    owner, chat, token = await shared_chat(claude_env.workdir)
    other = await sync_to_async(make_session)(owner=owner, title="Private")
    reader, connected, _ = await connect(rt, f"/ws/share/{token}/", ws_headers())  # no login
    assert connected
    assert "Shared notes" in await receive_until(reader, 'id="session-title"')

    # Whatever it sends is not read: no turn, no stop, no answer.
    for frame in ({"message": "write x.txt: sneaky"}, {"action": "stop"}, {"action": "permission", "event": 1}):
        await reader.send_to(text_data=json.dumps(frame))
    assert await reader.receive_nothing(timeout=0.3)
    assert not await Turn.objects.filter(session=chat).aexists()

    path = f"{claude_env.workdir}/notes.txt"
    turn = await Turn.objects.acreate(session=chat, author=owner, prompt=f"write {path}: hi", status="asking")
    await notify.turn_added(turn, chat)
    added = await receive_until(reader, f'id="turn-{turn.pk}"')
    assert "write notes.txt: hi" in added and str(claude_env.workdir) not in added
    assert "Cancel" not in added and "ws-send" not in added
    asked = await Event.objects.acreate(
        turn=turn,
        kind=Event.Kind.PERMISSION,
        name="Write",
        data={"tool": "Write", "input": {"file_path": path, "content": "hi"}, "status": "pending"},
        complete=False,
    )
    await notify.event_added(asked, chat.id)
    prompt = await receive_until(reader, "Claude Code asks to use")
    assert "Waiting for the chat's owner to answer." in prompt
    assert "<button" not in prompt and "ws-send" not in prompt and str(claude_env.workdir) not in prompt

    # The owner's other chat, and what is for the owner's pages alone, never reach it.
    elsewhere = await Turn.objects.acreate(session=other, author=owner, prompt="private words")
    await notify.turn_added(elsewhere, other)
    await notify.to_chat(chat.id, fragments.flash("for the owner's page only"))
    await notify.chats_changed(chat)
    assert await reader.receive_nothing(timeout=0.3)

    await sync_to_async(sharing.revoke_share_links)(links=ShareLink.objects.filter(session=chat))
    assert (await reader.receive_output(timeout=5)) == {"type": "websocket.close", "code": 4410}


async def test_a_share_socket_opens_only_with_a_live_link(claude_env, rt):
    _owner, chat, token = await shared_chat(claude_env.workdir, expires_in=timedelta(hours=1))
    await ShareLink.objects.filter(session=chat).aupdate(expires_at=timezone.now() - timedelta(seconds=1))
    _reader, connected, code = await connect(rt, f"/ws/share/{token}/", ws_headers())
    assert (connected, code) == (False, 4410)
    _reader, connected, code = await connect(rt, f"/ws/share/{'x' * 43}/", ws_headers())
    assert (connected, code) == (False, 4410)
    with pytest.raises(ValueError, match="No route found"):
        await connect(rt, "/ws/share/short/", ws_headers())
    _reader, connected, _code = await connect(rt, f"/ws/share/{token}/", ws_headers(origin="http://evil.example"))
    assert not connected
