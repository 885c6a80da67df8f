"""A task's worktree as its workspace (on the stand-in CLI process): its files and changes for who
may see the task, changes only for its creator."""

from __future__ import annotations

from pathlib import Path

import pytest
from asgiref.sync import sync_to_async

from tasks import services
from tests.api_client import EngineClient
from tests.factories import make_user
from tests.task_helpers import settled

pytestmark = [pytest.mark.usefixtures("rt"), pytest.mark.django_db(transaction=True)]


async def _client(user, engine) -> EngineClient:
    client = EngineClient(engine=engine)
    await client.aforce_login(user)
    return client


async def test_a_tasks_worktree_shows_its_files_and_changes_to_its_creator_only(fake_repo, user, rt):
    task = await services.create_task(engine=rt, user=user, prompt="write page.txt: from the task", title="Page")
    task = await settled(rt.tasks, task)
    creator = await _client(user, rt)

    files = (await creator.get(f"/workspace/task/{task.pk}/files/")).content.decode()
    assert "page.txt" in files and "Upload into this folder" in files
    opened = (await creator.get(f"/workspace/task/{task.pk}/files/", {"open": "page.txt"})).content.decode()
    assert "from the task" in opened
    changes = (await creator.get(f"/workspace/task/{task.pk}/changes/")).content.decode()
    assert f"auto-claude/{task.pk}" in changes and "Page" in changes  # the run's commit

    task_page = (await creator.get(f"/tasks/{task.pk}/")).content.decode()
    assert f"/workspace/task/{task.pk}/files/" in task_page and f"/workspace/task/{task.pk}/terminal/" in task_page

    stranger = await _client(await sync_to_async(make_user)(), rt)
    assert (await stranger.get(f"/workspace/task/{task.pk}/files/")).status_code == 404
    refused = await stranger.post(f"/workspace/task/{task.pk}/files/new/", {"folder": "", "name": "x", "what": "file"})
    assert refused.status_code == 404


async def test_a_tasks_terminal_is_in_its_worktree(fake_repo, user, rt):
    import json

    from channels.testing import WebsocketCommunicator

    from project.asgi import application_for
    from tests.factories import logged_in_client, ws_headers

    task = await services.create_task(engine=rt, user=user, prompt="write page.txt: from the task", title="Page")
    task = await settled(rt.tasks, task)
    client = await sync_to_async(logged_in_client)(user=user)
    socket = WebsocketCommunicator(
        application_for(rt), f"/ws/terminal/task/{task.pk}/", headers=ws_headers(client=client)
    )
    assert (await socket.connect(timeout=30))[0]
    await socket.send_to(text_data=json.dumps({"type": "input", "data": "pwd; cat page.txt; echo END-$((3+4))\n"}))
    seen = ""
    while "END-7" not in seen:
        seen += ((await socket.receive_output(timeout=30)).get("bytes") or b"").decode("utf-8", "replace")
    assert f".worktrees/{task.pk}" in seen and "from the task" in seen
    await socket.disconnect()


async def test_a_tasks_memory_is_its_worktrees_claude_md(fake_repo, user, rt):
    task = await services.create_task(engine=rt, user=user, prompt="write page.txt: from the task", title="Page")
    task = await settled(rt.tasks, task)
    creator = await _client(user, rt)
    task_page = (await creator.get(f"/tasks/{task.pk}/")).content.decode()
    assert f"/workspace/task/{task.pk}/memory/" in task_page
    answer = await creator.post(
        f"/workspace/task/{task.pk}/memory/", {"path": "CLAUDE.md", "missing": "1", "text": "task rules\n"}
    )
    assert answer.status_code == 302
    assert (Path(task.worktree_path) / "CLAUDE.md").read_text() == "task rules\n"
    stranger = await _client(await sync_to_async(make_user)(), rt)
    assert (await stranger.get(f"/workspace/task/{task.pk}/memory/")).status_code == 404
