"""What every websocket shares: same origin only, its member re-checked, closed at logout and
deactivation, a cap per member, and bad frames answered with a notice (chat and tasks sockets)."""

from __future__ import annotations

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User

from chat.models import Turn
from chat.web import sockets
from project.asgi import application_for
from tests.factories import logged_in_client, make_session, make_user, ws_headers

pytestmark = [pytest.mark.usefixtures("rt"), pytest.mark.django_db(transaction=True)]


def headers(client, *, origin: str = "http://localhost", host: bytes = b"localhost") -> list[tuple[bytes, bytes]]:
    return [(name, host if name == b"host" else value) for name, value in ws_headers(client=client, origin=origin)]


async def member_with_chat():
    user = await sync_to_async(make_user)()
    chat = await sync_to_async(make_session)(owner=user)
    client = await sync_to_async(logged_in_client)(user=user)
    return user, chat, client


async def opened(rt, path: str, hdrs) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application_for(rt), path, headers=hdrs)
    connected, code = await communicator.connect()
    assert connected, code
    await communicator.receive_from(timeout=10)  # the page's state, sent on connect
    return communicator


@pytest.mark.parametrize(
    "origin",
    [
        "http://localhost:8001",  # another port of the same host: another app
        "https://localhost",  # another scheme
        "http://localhost.evil.example",
        "null",
    ],
)
async def test_a_page_of_another_origin_cannot_open_a_members_socket(claude_env, origin, rt):
    _user, chat, client = await member_with_chat()
    for path in (f"/ws/chat/{chat.id}/", "/ws/tasks/"):
        communicator = WebsocketCommunicator(application_for(rt), path, headers=headers(client, origin=origin))
        connected, _code = await communicator.connect()
        assert not connected, (path, origin)


async def test_the_apps_own_origin_with_its_port_is_let_in(claude_env, settings, rt):
    _user, chat, client = await member_with_chat()
    communicator = await opened(
        rt, f"/ws/chat/{chat.id}/", headers(client, origin="http://localhost:8000", host=b"localhost:8000")
    )
    await communicator.disconnect()
    settings.CSRF_TRUSTED_ORIGINS = ["https://chat.example.com"]
    settings.ALLOWED_HOSTS = ["chat.example.com"]
    communicator = await opened(
        rt, f"/ws/chat/{chat.id}/", headers(client, origin="https://chat.example.com", host=b"chat.example.com")
    )
    await communicator.disconnect()


async def test_logging_out_closes_the_members_sockets_and_they_run_nothing(claude_env, rt):
    _user, chat, client = await member_with_chat()
    chat_socket = await opened(rt, f"/ws/chat/{chat.id}/", headers(client))
    board_socket = await opened(rt, "/ws/tasks/", headers(client))
    await sync_to_async(client.post)("/accounts/logout/")
    for socket in (chat_socket, board_socket):
        assert (await socket.receive_output(timeout=5))["code"] == 4401
    assert await Turn.objects.filter(session=chat).acount() == 0


async def test_a_socket_whose_session_ended_elsewhere_runs_nothing(claude_env, rt):
    """The member is read again from the session on every message (a missed signal changes nothing)."""
    _user, chat, client = await member_with_chat()
    socket = await opened(rt, f"/ws/chat/{chat.id}/", headers(client))
    await sync_to_async(client.session.flush)()
    await socket.send_to(text_data=json.dumps({"message": "echo: still here?"}))
    assert (await socket.receive_output(timeout=5))["code"] == 4401
    assert await Turn.objects.filter(session=chat).acount() == 0


async def test_deactivating_an_account_closes_its_sockets(claude_env, rt):
    user, chat, client = await member_with_chat()
    socket = await opened(rt, f"/ws/chat/{chat.id}/", headers(client))

    def deactivate() -> None:
        account = User.objects.get(pk=user.pk)
        account.is_active = False
        account.save()

    await sync_to_async(deactivate)()
    assert (await socket.receive_output(timeout=5))["code"] == 4401
    again = WebsocketCommunicator(application_for(rt), f"/ws/chat/{chat.id}/", headers=headers(client))
    assert (await again.connect())[0] is False


async def test_a_member_may_keep_only_so_many_sockets_open(claude_env, settings, rt):
    settings.CLAUDE_MAX_SOCKETS_PER_MEMBER = 3
    _user, chat, client = await member_with_chat()
    sockets = [await opened(rt, f"/ws/chat/{chat.id}/", headers(client)) for _ in range(3)]
    extra = WebsocketCommunicator(application_for(rt), "/ws/tasks/", headers=headers(client))
    connected, code = await extra.connect()
    assert not connected and code == 4429
    await sockets[0].disconnect()
    await asyncio.sleep(0.05)
    sockets[0] = await opened(rt, "/ws/tasks/", headers(client))  # room again
    # Another member is not affected.
    _other, other_chat, other_client = await member_with_chat()
    await (await opened(rt, f"/ws/chat/{other_chat.id}/", headers(other_client))).disconnect()
    for socket in sockets:
        await socket.disconnect()


@pytest.mark.parametrize(
    ("frame", "says"),
    [
        ('{"message": "hi \\ud800 there"}', "lone surrogate"),
        ('{"message": "nul \\u0000"}', "NUL character"),
        ("[" * 100_000 + "]" * 100_000, "could not read that request"),
        ("not json at all", "could not read that request"),
        ('{"action": "explode"}', "could not read that request"),
        ('{"action": "cancel", "turn": "x; drop"}', "could not read that request"),
    ],
    ids=["lone surrogate", "NUL", "nested 100,000 deep", "not JSON", "unknown action", "cancel of no turn"],
)
async def test_bad_frames_get_a_notice_and_the_socket_stays_open(claude_env, frame, says, rt):
    _user, chat, client = await member_with_chat()
    socket = await opened(rt, f"/ws/chat/{chat.id}/", headers(client))
    await socket.send_to(text_data=frame)
    assert says in await socket.receive_from(timeout=5)
    await socket.send_to(text_data=json.dumps({"action": "stop"}))
    assert "Nothing is running" in await socket.receive_from(timeout=5)
    await socket.disconnect()
    assert await Turn.objects.filter(session=chat).acount() == 0


async def test_a_frame_over_the_limit_gets_a_notice(claude_env, settings, rt):
    settings.CLAUDE_MAX_MESSAGE_CHARS = 10
    _user, chat, client = await member_with_chat()
    socket = await opened(rt, f"/ws/chat/{chat.id}/", headers(client))
    await socket.send_to(text_data=json.dumps({"message": "x" * 200_000}))
    assert "more than the server takes at once" in await socket.receive_from(timeout=5)
    await socket.disconnect()


async def test_pages_connecting_at_once_take_turns_and_a_page_that_left_meanwhile_costs_nothing(
    claude_env, settings, rt
):
    settings.CLAUDE_MAX_SOCKETS_PER_MEMBER = 50
    user, chat, client = await member_with_chat()
    pages = [
        WebsocketCommunicator(application_for(rt), f"/ws/chat/{chat.id}/", headers=headers(client)) for _ in range(10)
    ]
    connecting = [asyncio.ensure_future(page.connect(timeout=30)) for page in pages]
    await asyncio.sleep(0.05)
    # A page that opened its socket behind them and was closed before its turn came.
    left = WebsocketCommunicator(application_for(rt), f"/ws/chat/{chat.id}/", headers=headers(client))
    await left.send_input({"type": "websocket.connect"})
    await left.send_input({"type": "websocket.disconnect", "code": 1001})
    assert all(connected for connected, _code in await asyncio.gather(*connecting))
    for page in pages:
        assert "session-state" in await page.receive_from(timeout=10)
    assert await left.receive_nothing(timeout=0.5)  # never accepted: its member and chat were never read
    await left.wait(timeout=5)
    assert sockets.open_sockets(user.pk) == 10
    for page in pages:
        await page.disconnect()
