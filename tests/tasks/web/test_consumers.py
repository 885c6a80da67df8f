"""The tasks' websockets through the real ASGI application: a task that asks for permission shows
the prompt on its page (buttons for who may answer), the board says "needs you", and the answer
from the task's page lets the run go on."""

from __future__ import annotations

import json
import re

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from project.asgi import application_for
from tasks import services
from tasks.models import Task
from tests.factories import logged_in_client, make_user, receive_until, ws_headers
from tests.task_helpers import settled

pytestmark = [pytest.mark.usefixtures("rt"), pytest.mark.django_db(transaction=True), pytest.mark.real_cli]


@pytest.fixture
def asking(shared_repo, settings, tmp_path):
    """Tasks run in the CLI's default mode with only Read allowed: a write asks."""
    settings.CLAUDE_TASK_PERMISSION_MODE = "default"
    settings.CLAUDE_TASK_ALLOWED_TOOLS = ["Read"]
    settings.CLAUDE_TASK_STATE_DIR = tmp_path / "task-state"
    settings.CLAUDE_MAX_TOKENS_PER_MINUTE = 0
    return shared_repo


async def socket(rt, user, path: str) -> WebsocketCommunicator:
    client = await sync_to_async(logged_in_client)(user=user)
    tab = WebsocketCommunicator(application_for(rt), path, headers=ws_headers(client=client))
    connected, _ = await tab.connect()
    assert connected
    return tab


async def test_a_task_that_asks_is_answered_on_its_page_and_the_board_says_needs_you(asking, rt):
    creator = await sync_to_async(make_user)()
    colleague = await sync_to_async(make_user)()
    board = await socket(rt, creator, "/ws/tasks/")
    task = await services.create_task(
        engine=rt, user=creator, prompt="write notes.txt: from the task", title="Notes", project="team"
    )
    page = await socket(rt, creator, f"/ws/tasks/{task.pk}/")
    other_page = await socket(rt, colleague, f"/ws/tasks/{task.pk}/")

    html = await receive_until(page, "Always allow Write for this task")
    event_id = int(re.search(r'"event": (\d+), "answer": "allow"', html).group(1))
    seen_by_other = await receive_until(other_page, "Waiting for an answer from the task")
    assert "Always allow" not in seen_by_other  # no buttons for who may not answer
    assert "needs you" in await receive_until(board, "needs you")

    await other_page.send_to(text_data=json.dumps({"action": "permission", "event": event_id, "answer": "allow"}))
    assert "not yours to answer" in await receive_until(other_page, "not yours")
    await page.send_to(text_data=json.dumps({"action": "permission", "event": event_id, "answer": "allow"}))
    await receive_until(other_page, f"Allowed by {creator.username}.")

    task = await settled(rt.tasks, task)
    assert task.status == Task.Status.COMPLETED, task.error
    assert task.files_changed == ["notes.txt"]
    for tab in (board, page, other_page):
        await tab.disconnect()


async def test_a_task_pages_and_the_boards_sockets_leave_every_group_they_joined(fake_repo, user, rt):
    """(On the stand-in process.) The groups are the socket's ``groups``, left by the base on disconnect."""
    from channels.layers import get_channel_layer

    from chat.live import notify
    from tasks import live

    task = await services.create_task(engine=rt, user=user, prompt="echo: hi", title="Hi")
    page = await socket(rt, user, f"/ws/tasks/{task.pk}/")
    board = await socket(rt, user, "/ws/tasks/")
    layer = get_channel_layer()
    page_groups = [live.task_group(task.pk), notify.chat_group(task.session_id)]
    everyone = [*page_groups, live.BOARD_GROUP, notify.member_group(user.pk)]
    assert all(len(layer.groups.get(group, {})) == 1 for group in page_groups)
    assert len(layer.groups.get(notify.member_group(user.pk), {})) == 2
    await page.disconnect()
    await board.disconnect()
    assert not any(layer.groups.get(group) for group in everyone)
