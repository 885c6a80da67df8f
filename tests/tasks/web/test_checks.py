"""A project's checks on the pages and in the API: the member's settings form, the pass/fail badge of
a task's card, the latest check's output on its page (also as it changes, over its socket), the
admin's form for a shared project. Runs on the stand-in CLI process (tests/fake_session.py); the
commands themselves run in the real sandbox."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from chat.services.tokens import issue_token
from members.roles import Role, set_role
from project.asgi import application_for
from tasks import services
from tasks.models import CheckRun, ProjectChecks
from tests.api_client import ApiCaller, EngineClient
from tests.factories import logged_in_client, make_user, receive_until, ws_headers
from tests.task_helpers import settled

pytestmark = [pytest.mark.usefixtures("rt"), pytest.mark.django_db(transaction=True)]


async def browser_for(user, engine=None) -> EngineClient:
    client = EngineClient(engine=engine)
    await client.aforce_login(user)
    return client


async def test_a_member_sets_their_own_folders_checks_from_settings(user, rt):
    client = await browser_for(user, rt)
    settings_page = (await client.get("/settings/")).content.decode()
    assert 'href="/tasks/checks/"' in settings_page
    page = (await client.get("/tasks/checks/")).content.decode()
    assert "Checks of your own folder" in page and "bash -lc" in page

    bad = await client.post(
        "/tasks/checks/", {"check_command": "pytest", "max_check_runs": "50", "timeout_seconds": "0"}
    )
    text = bad.content.decode()
    assert bad.status_code == 200 and "less than or equal to 20" in text and "greater than or equal to 1" in text
    assert not await ProjectChecks.objects.aexists()

    saved = await client.post(
        "/tasks/checks/",
        {
            "setup_command": "pip install -r requirements.txt",
            "check_command": "pytest -q",
            "max_check_runs": "3",
            "timeout_seconds": "300",
        },
        follow=True,
    )
    assert "Saved: they apply from the next run of a task in your own folder." in saved.content.decode()
    checks = await ProjectChecks.objects.aget()
    assert (checks.project, checks.owner_id, checks.check_command, checks.max_check_runs) == (
        "default",
        user.pk,
        "pytest -q",
        3,
    )
    again = (await client.get("/tasks/checks/")).content.decode()
    assert "pip install -r requirements.txt" in again and "pytest -q" in again

    # Another member's form is their own: it shows none of these.
    other = await browser_for(await sync_to_async(make_user)(), rt)
    assert "pytest -q" not in (await other.get("/tasks/checks/")).content.decode()


async def test_a_viewer_sets_no_checks(user, rt):
    await sync_to_async(set_role)(user=user, role=Role.VIEWER, by=None)
    client = await browser_for(user, rt)
    refused = await client.post(
        "/tasks/checks/", {"check_command": "true", "max_check_runs": "0", "timeout_seconds": "5"}
    )
    assert refused.status_code == 403
    assert not await ProjectChecks.objects.aexists()


async def test_the_card_shows_pass_or_fail_and_the_page_the_output_live(fake_repo, user, rt):
    await ProjectChecks.objects.acreate(project="default", owner=user, check_command="echo 3 tests failed; exit 1")
    client = await browser_for(user, rt)
    socket_client = await sync_to_async(logged_in_client)(user=user)
    task = await services.create_task(engine=rt, user=user, prompt="echo: done", title="Checked")
    communicator = WebsocketCommunicator(
        application_for(rt), f"/ws/tasks/{task.pk}/", headers=ws_headers(client=socket_client)
    )
    connected, _ = await communicator.connect()
    assert connected
    try:
        await settled(rt.tasks, task)
        # The page's socket hears of the check and sends the head with its output.
        frame = await receive_until(communicator, "3 tests failed")
        assert 'id="task-checks"' in frame[frame.rindex('id="task-head"') :] and "check failed" in frame
    finally:
        await communicator.disconnect()

    board = (await client.get("/tasks/")).content.decode()
    assert 'class="badge check check-failed"' in board and ">check failed</a>" in board
    page = (await client.get(f"/tasks/{task.pk}/")).content.decode()
    assert "<details open>" in page and "3 tests failed" in page and "exit code 1" in page
    assert "The check failed: its output is under Checks." in page

    # Fixed: a follow-up's run passes, the card says so and the output is folded away.
    checks = await ProjectChecks.objects.aget()
    checks.check_command = "echo all 3 pass"
    await checks.asave()
    await services.resume(engine=rt, task_id=task.pk, message="echo: fixed")
    await settled(rt.tasks, task)
    board = (await client.get("/tasks/")).content.decode()
    assert 'class="badge check check-passed"' in board and ">check passed</a>" in board
    page = (await client.get(f"/tasks/{task.pk}/")).content.decode()
    assert "<details>" in page and "all 3 pass" in page and "after run 2" in page


async def test_the_api_carries_the_latest_check(fake_repo, user, rt):
    await ProjectChecks.objects.acreate(project="default", owner=user, check_command="echo ok")
    api = ApiCaller.with_token((await sync_to_async(issue_token)(user=user)).key, engine=rt)
    made = (await api.post("/api/tasks", {"prompt": "echo: done"}, content_type="application/json")).json()
    assert made["check"] is None
    await rt.tasks.idle()
    got = (await api.get(f"/api/tasks/{made['id']}")).json()
    check = got["check"]
    assert {k: v for k, v in check.items() if k != "finished_at"} == {
        "kind": "check",
        "run": 1,
        "passed": True,
        "result": "passed",
        "exit_code": 0,
        "sent_back": False,
        "output": "ok\n",
    }
    listed = (await api.get("/api/tasks")).json()["tasks"]
    assert listed[0]["check"]["passed"] is True and listed[0]["check"]["output"] is None
    assert await CheckRun.objects.acount() == 1


async def test_an_admin_sets_a_shared_projects_checks(settings, tmp_path, rt):
    settings.CLAUDE_PROJECTS = {"api": str(tmp_path)}
    admin = await sync_to_async(make_user)(is_staff=True)
    await sync_to_async(lambda: admin.__class__.objects.filter(pk=admin.pk).update(is_superuser=True))()
    client = await browser_for(admin, rt)
    form = (await client.get("/admin/tasks/projectchecks/add/")).content.decode()
    assert '<option value="api">api</option>' in form and 'value="default"' not in form
    fields = {
        "project": "api",
        "setup_command": "",
        "check_command": "make test",
        "max_check_runs": "2",
        "timeout_seconds": "600",
    }
    assert (await client.post("/admin/tasks/projectchecks/add/", fields)).status_code == 302
    checks = await ProjectChecks.objects.aget()
    assert (checks.project, checks.owner_id, checks.check_command) == ("api", None, "make test")
    twice = (await client.post("/admin/tasks/projectchecks/add/", fields)).content.decode()
    assert "This project has its checks already" in twice
