"""The tasks board and a task's page: pages, buttons, and live fragments over ``ws/tasks/``."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import AsyncClient

from project.asgi import application_for
from tasks import services
from tasks.models import BoardNote, Task
from tests.api_client import EngineClient
from tests.factories import logged_in_client, make_user, receive_until, ws_headers
from tests.task_helpers import settled

pytestmark = [pytest.mark.usefixtures("rt"), pytest.mark.django_db(transaction=True)]


async def browser_for(user, engine=None) -> AsyncClient:
    client = EngineClient(engine=engine)
    await client.aforce_login(user)
    return client


async def test_the_board_needs_a_login_and_states_the_skip_permissions_risk(repo, scheduler, user, rt):
    assert (await AsyncClient().get("/tasks/")).status_code == 302
    page = (await (await browser_for(user, rt)).get("/tasks/")).content.decode()
    assert "New task" in page and 'href="/tasks/"' in page and 'href="/"' in page
    assert "--dangerously-skip-permissions" in page and "Risk:" in page
    assert 'ws-connect="/ws/tasks/"' in page


async def test_the_board_and_its_socket_show_the_schedulers_note_from_the_database(fake_repo, user, rt):
    """Why starts are held is read from the database by every page and socket, whichever process
    the scheduler runs in; the scheduler's first round clears an earlier run's note."""
    await rt.tasks.idle()
    assert await sync_to_async(BoardNote.read)() == ""
    await BoardNote.objects.aupdate_or_create(
        pk=BoardNote.ONE, defaults={"text": "Token budget reached: wait a minute."}
    )
    page = (await (await browser_for(user, rt)).get("/tasks/")).content.decode()
    assert 'id="budget-note">Token budget reached: wait a minute.</p>' in page
    client = await sync_to_async(logged_in_client)(user=user)
    board = WebsocketCommunicator(application_for(rt), "/ws/tasks/", headers=ws_headers(client=client))
    assert (await board.connect())[0]
    assert "Token budget reached: wait a minute." in await receive_until(board, "budget-note")
    await board.disconnect()


async def test_new_task_form_runs_it_and_its_page_shows_log_and_diff(repo, scheduler, user, rt):
    client = await browser_for(user, rt)
    # The form names the folder the task will work in as the task's page will name it: by name, not path.
    form = (await client.get("/tasks/new/")).content.decode()
    assert '<option value="default" >Your own folder</option>' in form and str(repo) not in form
    response = await client.post(
        "/tasks/new/", {"prompt": "write page.txt: from the form", "title": "Form task", "priority": "1"}
    )
    assert response.status_code == 302
    task = await Task.objects.aget(title="Form task")
    assert response["Location"] == f"/tasks/{task.pk}/"
    await settled(scheduler, task)
    page = (await client.get(f"/tasks/{task.pk}/")).content.decode()
    assert "<dt>Project</dt><dd>Your own folder</dd>" in page and str(repo) not in page
    assert f"<code>.worktrees/{task.pk}</code>" in page
    assert "Completed" in page and "page.txt" in page and 'id="turn-' in page and "Write" in page
    diff = (await client.get(f"/tasks/{task.pk}/diff/")).content.decode()
    assert "1 file changed" in diff and "<code>page.txt</code>" in diff and '<span class="badge">added</span>' in diff
    assert '<ins class="line add">+from the form</ins>' in diff
    bad = await client.post("/tasks/new/", {"prompt": "", "priority": "x"})
    assert bad.status_code == 400 and "Say what the task should do." in bad.content.decode()
    nul = await client.post(f"/tasks/{task.pk}/resume/", {"message": "go \x00 on"}, headers={"HX-Request": "true"})
    assert "The message holds a NUL character, which cannot be stored." in nul.content.decode()
    assert (await Task.objects.aget(pk=task.pk)).status == Task.Status.COMPLETED

    merged = await client.post(f"/tasks/{task.pk}/merge/", headers={"HX-Request": "true"})
    assert merged.status_code == 200 and "merged" in merged.content.decode()
    kept = (await client.get(f"/tasks/{task.pk}/diff/")).content.decode()
    assert "Merged: 1 file changed" in kept and '<ins class="line add">+from the form</ins>' in kept
    again = await client.post(f"/tasks/{task.pk}/merge/", headers={"HX-Request": "true"})
    assert "only a completed task can be merged" in again.content.decode()
    assert (await client.get("/tasks/999999/")).status_code == 404


async def test_only_the_creator_or_staff_act_on_a_task(repo, shared_repo, scheduler, user, rt):
    task = await settled(scheduler, await services.create_task(engine=rt, user=user, prompt="echo: hi", project="team"))
    other = await browser_for(await sync_to_async(make_user)(), rt)
    refused = await other.post(f"/tasks/{task.pk}/discard/", headers={"HX-Request": "true"})
    assert "Only the person who created" in refused.content.decode()
    assert (await Task.objects.aget(pk=task.pk)).status == Task.Status.COMPLETED


async def test_a_task_in_someone_elses_own_folder_is_not_theirs_to_see(repo, scheduler, user, rt):
    task = await settled(scheduler, await services.create_task(engine=rt, user=user, prompt="echo: mine"))
    other = await browser_for(await sync_to_async(make_user)(), rt)
    assert (await other.get(f"/tasks/{task.pk}/")).status_code == 404
    assert (await other.get(f"/tasks/{task.pk}/diff/")).status_code == 404
    assert f"task-{task.pk}" not in (await other.get("/tasks/")).content.decode()
    assert (await other.post(f"/tasks/{task.pk}/discard/")).status_code == 404
    assert (await Task.objects.aget(pk=task.pk)).status == Task.Status.COMPLETED


async def test_the_board_socket_streams_status_and_the_task_socket_streams_the_log(repo, scheduler, user, rt):
    client = await sync_to_async(logged_in_client)(user=user)
    anonymous = WebsocketCommunicator(application_for(rt), "/ws/tasks/", headers=ws_headers())
    connected, code = await anonymous.connect()
    assert not connected and code == 4401

    board = WebsocketCommunicator(application_for(rt), "/ws/tasks/", headers=ws_headers(client=client))
    assert (await board.connect())[0]
    assert 'id="board-wrap"' in await board.receive_from(timeout=10)
    task = await services.create_task(engine=rt, user=user, prompt="slow 2", title="Live one")
    assert f'id="task-{task.pk}"' in await receive_until(board, "Live one")
    # The task's page joins its session's group: the log arrives as the chat's fragments.
    early = WebsocketCommunicator(application_for(rt), f"/ws/tasks/{task.pk}/", headers=ws_headers(client=client))
    assert (await early.connect())[0]
    assert "Slow answer" in await receive_until(early, "Slow answer")
    await early.disconnect()
    await settled(scheduler, task)
    await receive_until(board, 'data-status="completed"')
    page = WebsocketCommunicator(application_for(rt), f"/ws/tasks/{task.pk}/", headers=ws_headers(client=client))
    assert (await page.connect())[0]
    assert 'id="task-head"' in await page.receive_from(timeout=10)
    await services.resume(engine=rt, task_id=task.pk, message="echo: streamed to the page")
    seen = await receive_until(page, 'class="event text')
    assert "streamed to the page" in seen + await receive_until(page, "streamed to the page")
    await settled(scheduler, task)
    await board.disconnect()
    await page.disconnect()
    missing = WebsocketCommunicator(application_for(rt), "/ws/tasks/999999/", headers=ws_headers(client=client))
    assert (await missing.connect()) == (False, 4404)


async def test_the_pull_request_button_then_its_link_and_state_on_the_card_and_the_page(
    team_remote, forge, scheduler, user, rt
):
    task = await settled(
        scheduler,
        await services.create_task(
            engine=rt, user=user, prompt="write pr.txt: for review", title="Reviewed", project="team"
        ),
    )
    client = await browser_for(user, rt)
    button = f'hx-post="/tasks/{task.pk}/pull-request/"'
    assert button in (await client.get("/tasks/")).content.decode()
    assert button in (await client.get(f"/tasks/{task.pk}/")).content.decode()
    # Only its creator (or staff) may press it.
    other = await browser_for(await sync_to_async(make_user)(), rt)
    refused = await other.post(f"/tasks/{task.pk}/pull-request/", headers={"HX-Request": "true"})
    assert "Only the person who created" in refused.content.decode() and forge.requests == []

    pressed = await client.post(f"/tasks/{task.pk}/pull-request/", headers={"HX-Request": "true"})
    assert pressed.status_code == 200
    assert (
        f"Task #{task.pk}: pull request #1 is open: https://github.com/acme/widgets/pull/1" in pressed.content.decode()
    )

    page = (await client.get(f"/tasks/{task.pk}/")).content.decode()
    link = 'href="https://github.com/acme/widgets/pull/1"'
    assert link in page and "#1 open" in page and "Update pull request" in page and "acme/widgets" in page
    assert "deleted without merging. Its pull request #1 is closed." in page  # Discard's confirmation
    # Opening the page asks the forge once (quietly, not again within seconds); the board never does.
    refresh = f'hx-post="/tasks/{task.pk}/pull-request/refresh/"'
    assert refresh in page and 'hx-vals=\'{"quiet": "1"}\'' in page
    asked = len(forge.requests)
    board = (await client.get("/tasks/")).content.decode()
    assert link in board and "#1 open" in board and len(forge.requests) == asked
    quiet = await client.post(f"/tasks/{task.pk}/pull-request/refresh/", {"quiet": "1"}, headers={"HX-Request": "true"})
    assert quiet.status_code == 204 and len(forge.requests) == asked

    forge.merge("github", "acme/widgets", 1)
    refreshed = await other.post(f"/tasks/{task.pk}/pull-request/refresh/", headers={"HX-Request": "true"})
    assert "Pull request #1: merged." in refreshed.content.decode()  # anyone who sees the task may ask
    page = (await client.get(f"/tasks/{task.pk}/")).content.decode()
    assert "#1 merged" in page and 'data-status="merged"' in page and "Update pull request" not in page
    assert "Merged through pull request #1 on GitHub" in page


async def test_a_refused_pull_request_is_said_on_the_page(team_remote, forge, scheduler, user, monkeypatch, rt):
    task = await settled(
        scheduler, await services.create_task(engine=rt, user=user, prompt="write hi.txt: hi", project="team")
    )
    monkeypatch.setenv("CLAUDE_FORGE_TOKEN_TEAM", "wrong")
    client = await browser_for(user, rt)
    pressed = await client.post(f"/tasks/{task.pk}/pull-request/", headers={"HX-Request": "true"})
    assert "GitHub refused the token in CLAUDE_FORGE_TOKEN_TEAM" in pressed.content.decode()
    assert 'class="flash error"' in pressed.content.decode()
    # Without htmx: back to the task's page, with the message.
    plain = await client.post(f"/tasks/{task.pk}/pull-request/")
    assert plain.status_code == 302 and plain["Location"] == f"/tasks/{task.pk}/"
    assert "GitHub refused the token" in (await client.get(f"/tasks/{task.pk}/")).content.decode()


async def test_a_diff_git_cannot_show_says_why_instead_of_failing(repo, scheduler, user, rt):
    """A member's own folder is theirs: a chat may break its .git. The diff says so and what to do."""
    task = await settled(scheduler, await services.create_task(engine=rt, user=user, prompt="write x.txt: x"))
    (repo / ".git" / "worktrees" / str(task.pk) / "HEAD").unlink()  # git's record of the task's worktree
    response = await (await browser_for(user, rt)).get(f"/tasks/{task.pk}/diff/")
    assert response.status_code == 200
    text = response.content.decode()
    assert f"git could not show the changes of task #{task.pk}" in text and "put it right there" in text
