"""Roles: a viewer reads and runs nothing, refused on every kind of route (a page, the socket, the
API) with words that say why; the page hides what they cannot do. Turns run on the stand-in CLI
process (``fake_cli``), though a viewer's never starts."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from chat.models import Session, Turn
from chat.services.tokens import issue_token
from members import roles
from members.models import AuditEntry, Role
from project.asgi import application_for
from tests.api_client import ApiCaller, EngineClient
from tests.factories import logged_in_client, make_session, make_user, receive_until, ws_headers

pytestmark = [pytest.mark.usefixtures("rt"), pytest.mark.django_db(transaction=True)]

REFUSAL = "Your role is viewer: you can read the chats shared with you and the tasks of the projects open to you"


@sync_to_async
def _viewer():
    """A member made a viewer by staff (who keeps a chat from before), with an API token."""
    staff = make_user(username="root", is_staff=True)
    viewer = make_user(username="vera")
    chat = make_session(owner=viewer)
    roles.set_role(user=viewer, role=Role.VIEWER, by=staff)
    return viewer, chat, issue_token(user=viewer).key


async def test_a_viewer_is_refused_on_pages_the_socket_and_the_api(fake_cli, rt):
    viewer, chat, key = await _viewer()
    entry = await AuditEntry.objects.aget(action=AuditEntry.Action.ROLE_CHANGED)
    assert (entry.actor_name, entry.object_repr, entry.detail) == ("root", "vera", "Member → Viewer")

    browser = EngineClient(engine=rt)
    await browser.aforce_login(viewer)
    # Pages: reading works, the buttons that run things are gone, and posting anyway is a 403 saying why.
    board = (await browser.get("/tasks/")).content.decode()
    assert 'id="viewer-note"' in board and 'href="#new-task"' not in board and 'class="button new-chat"' not in board
    for method, path in (
        ("post", "/chat/new/"),
        ("get", "/chat/new/"),
        ("get", "/tasks/new/"),
        ("post", "/tasks/new/"),
    ):
        refused = await getattr(browser, method)(path)
        assert refused.status_code == 403 and REFUSAL in refused.content.decode(), (method, path)
    own = (await browser.get(chat.get_absolute_url())).content.decode()
    assert 'id="viewer-note"' in own and 'id="message-form"' not in own

    # The socket: the message is refused and never saved as a turn.
    client = await sync_to_async(logged_in_client)(user=viewer)
    socket = WebsocketCommunicator(application_for(rt), f"/ws/chat/{chat.id}/", headers=ws_headers(client=client))
    assert (await socket.connect())[0]
    await receive_until(socket, 'id="turns"')
    await socket.send_to(text_data=json.dumps({"message": "echo: hello", "HEADERS": {}}))
    assert REFUSAL in await receive_until(socket, "Your role is viewer")
    await socket.disconnect()
    assert not await Turn.objects.filter(session=chat).aexists()

    # The API: reading tasks works; a turn or a task is 403 with the same words, and no chat is made.
    api = ApiCaller.with_token(key, engine=rt)
    assert (await api.get("/api/tasks")).status_code == 200
    turn = await api.post(
        "/api/analysis/chat", json.dumps({"sessionId": "6f0c9a52-7d43-4d7e-9a51-0f3b1a2c4d5e", "message": "hi"})
    )
    assert turn.status_code == 403 and turn.json()["error"].startswith(REFUSAL)
    assert not await Session.objects.filter(pk="6f0c9a52-7d43-4d7e-9a51-0f3b1a2c4d5e").aexists()
    task = await api.post("/api/tasks", json.dumps({"prompt": "echo: hi"}))
    assert task.status_code == 403 and task.json()["error"].startswith(REFUSAL)
    assert not fake_cli.started


async def test_a_member_is_not_refused_and_picking_admin_makes_staff(fake_cli, rt):
    member = await sync_to_async(make_user)(username="mo")
    browser = EngineClient(engine=rt)
    await browser.aforce_login(member)
    page = (await browser.get("/tasks/")).content.decode()
    assert 'href="#new-task"' in page and 'class="button new-chat"' in page
    assert (await browser.get("/tasks/new/")).status_code == 200
    assert (await EngineClient(engine=rt).get("/chat/new/")).status_code == 302  # signed out: to the sign-in page
    await sync_to_async(roles.set_role)(user=member, role=Role.ADMIN, by=None)
    await member.arefresh_from_db()
    assert member.is_staff and await sync_to_async(roles.role_of)(member) == Role.ADMIN
