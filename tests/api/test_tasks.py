"""The tasks API (bearer token), restart recovery and the token budget: tasks end to end on the REAL
CLI; the limits, the budget and the API's refusals on the stand-in process (tests/fake_session.py)."""

from __future__ import annotations

import asyncio
import socket
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from chat.models import Turn
from chat.services import recovery, turns
from chat.services.tokens import issue_token
from tasks import services
from tasks.models import BoardNote, Task
from tasks.services import scheduling as scheduler_module
from tests.api_client import ApiCaller
from tests.factories import make_user
from tests.processes import unique_sleep
from tests.task_helpers import settled, wait_for

pytestmark = [pytest.mark.usefixtures("rt"), pytest.mark.django_db(transaction=True)]


async def script_for(user, engine) -> ApiCaller:
    token = await sync_to_async(issue_token)(user=user)
    return ApiCaller.with_token(token.key, engine=engine)


@pytest.fixture
async def api(user, rt):
    return await script_for(user, rt)


async def test_create_follow_and_merge_through_the_api(repo, scheduler, api):
    made = await api.post(
        "/api/tasks",
        {"prompt": "write api.txt: via api", "title": "From CI", "priority": 3},
        content_type="application/json",
    )
    assert made.status_code == 201, made.content
    body = made.json()
    assert body["status"] in ("queued", "running") and body["branch"] == f"auto-claude/{body['id']}"
    await scheduler.idle()
    got = (await api.get(f"/api/tasks/{body['id']}")).json()
    assert got["status"] == "completed" and got["files_changed"] == ["api.txt"]
    assert got["tokens"]["total"] > 0 and got["cost_usd"] > 0 and got["conflicts"] is None
    listed = (await api.get("/api/tasks?status=completed")).json()["tasks"]
    assert [t["id"] for t in listed] == [body["id"]]
    merged = await api.post(f"/api/tasks/{body['id']}/merge")
    assert merged.status_code == 200 and merged.json()["status"] == "merged"
    assert (repo / "api.txt").read_text() == "via api\n"
    again = await api.post(f"/api/tasks/{body['id']}/merge")
    assert again.status_code == 409 and "only a completed task" in again.json()["error"]


async def test_a_numeric_priority_string_counts_and_a_completed_task_takes_a_follow_up(fake_repo, rt, api):
    scheduler = rt.tasks
    made = await api.post("/api/tasks", {"prompt": "echo: first", "priority": "2", "yolo": False, "project": "default"})
    assert made.status_code == 201, made.content
    task = made.json()
    assert task["priority"] == 2 and task["yolo"] is False and task["project"] == "default"
    await scheduler.idle()
    assert (await api.post(f"/api/tasks/{task['id']}/resume")).status_code == 409  # completed: say what to do next
    followed = await api.post(f"/api/tasks/{task['id']}/resume", {"message": "echo: second"})
    assert followed.status_code == 200 and followed.json()["status"] in ("queued", "running")
    await scheduler.idle()
    assert (await api.get(f"/api/tasks/{task['id']}")).json()["status"] == "completed"


async def test_bad_requests(fake_repo, rt, api, user, settings, tmp_path):
    from chat.models import ProjectAccess
    from tests.task_helpers import init_repo

    settings.CLAUDE_PROJECTS = {"team": init_repo(tmp_path / "team")}
    await ProjectAccess.objects.acreate(project="team", everyone=True)
    scheduler = rt.tasks
    assert (await ApiCaller({}, engine=rt).get("/api/tasks")).status_code == 401
    assert (await ApiCaller({"Authorization": "Bearer " + "x" * 40}, engine=rt).get("/api/tasks")).status_code == 401
    assert (await api.get("/api/tasks/999999")).status_code == 404
    assert (await api.post("/api/tasks/999999/pause")).status_code == 404
    assert (await api.post("/api/tasks/1/explode")).status_code in (404,)
    bad = await api.post("/api/tasks", {"prompt": "x", "priority": "urgent"}, content_type="application/json")
    assert bad.status_code == 400 and "priority" in bad.json()["fields"]
    assert (await api.post("/api/tasks", {"title": "no prompt"}, content_type="application/json")).status_code == 400
    assert (
        await api.post("/api/tasks", {"prompt": "x", "branch": "../x"}, content_type="application/json")
    ).status_code == 400
    assert (await api.post("/api/tasks", "[1, 2]", content_type="application/json")).status_code == 400
    assert (await api.post("/api/tasks", "{not json", content_type="application/json")).status_code == 400
    assert (await api.get("/api/tasks?status=weird")).status_code == 400
    assert (await api.delete("/api/tasks")).status_code == 405
    assert await Task.objects.acount() == 0
    # Someone else's task in a shared project: visible, but not theirs to act on.
    made = (
        await api.post("/api/tasks", {"prompt": "echo: mine", "project": "team"}, content_type="application/json")
    ).json()
    other = await sync_to_async(make_user)()
    other_api = await script_for(other, rt)
    assert (await other_api.get(f"/api/tasks/{made['id']}")).status_code == 200
    assert (await other_api.post(f"/api/tasks/{made['id']}/discard")).status_code == 403
    # One in their own folder: not there at all for the other.
    own = (await api.post("/api/tasks", {"prompt": "echo: private"}, content_type="application/json")).json()
    assert (await other_api.get(f"/api/tasks/{own['id']}")).status_code == 404
    assert own["id"] not in [t["id"] for t in (await other_api.get("/api/tasks")).json()["tasks"]]
    await scheduler.idle()


async def test_restart_recovery_ends_leftover_cli_processes_and_the_task_resumes(repo, scheduler, user, settings, rt):
    scheduler.limit = 1
    blocker = await services.create_task(engine=rt, user=user, prompt="slow 1")
    task = await services.create_task(engine=rt, user=user, prompt="my name is Grace", title="Survives a crash")
    await scheduler.idle()
    # Emulate a crash in the middle of a later run: the DB says running and a CLI process is left behind.
    task = await Task.objects.aget(pk=task.pk)
    await Task.objects.filter(pk=task.pk).aupdate(status=Task.Status.RUNNING)
    turn = await Turn.objects.acreate(session_id=task.session_id, prompt="slow 30", status=Turn.Status.RUNNING)
    argv = [
        settings.CLAUDE_CLI,
        "--print",
        "--output-format",
        "stream-json",
        "--verbose",
        f"--resume={task.session_id}",
    ]
    orphan = subprocess.Popen(
        argv,
        cwd=task.worktree_path,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    orphan.stdin.write(b"slow 30")
    orphan.stdin.close()
    await Turn.objects.filter(pk=turn.pk).aupdate(pid=orphan.pid)
    await asyncio.sleep(0.5)

    assert await sync_to_async(recovery.recover_interrupted)() >= 1  # what start-up runs first
    assert await sync_to_async(services.recover_tasks)() == 1
    assert await asyncio.to_thread(orphan.wait, 10) is not None
    task = await Task.objects.aget(pk=task.pk)
    assert task.status == Task.Status.PAUSED and task.reason == Task.Reason.INTERRUPTED
    assert (await Turn.objects.aget(pk=turn.pk)).status == Turn.Status.INTERRUPTED

    await services.resume(engine=rt, task_id=task.pk, message="what is my name")
    task = await settled(scheduler, task)
    assert task.status == Task.Status.COMPLETED, task.error
    from tests.task_helpers import texts

    assert "Your name is Grace." in await texts(task)
    assert (await Task.objects.aget(pk=blocker.pk)).status == Task.Status.COMPLETED


async def test_shutdown_marks_running_tasks_interrupted(fake_repo, user, rt):
    task = await services.create_task(engine=rt, user=user, prompt="slow 5")
    await wait_for(lambda: _running_turn(task))
    await rt.shutdown()
    task = await Task.objects.aget(pk=task.pk)
    assert task.status == Task.Status.PAUSED and task.reason == Task.Reason.INTERRUPTED


async def _running_turn(task: Task) -> bool:
    task = await Task.objects.aget(pk=task.pk)
    return (
        bool(task.session_id)
        and await Turn.objects.filter(session_id=task.session_id, status=Turn.Status.RUNNING).aexists()
    )


async def test_the_token_budget_holds_new_starts_and_says_so(fake_repo, rt, user, settings, monkeypatch):
    # Long enough that a loaded machine still looks at the second task within the first one's window.
    monkeypatch.setattr(scheduler_module, "BUDGET_WINDOW_SECONDS", 4.0)
    settings.CLAUDE_MAX_TOKENS_PER_MINUTE = 10
    first = await settled(rt.tasks, await services.create_task(engine=rt, user=user, prompt="echo: one"))
    assert first.status == Task.Status.COMPLETED
    second = await services.create_task(engine=rt, user=user, prompt="echo: two")
    await asyncio.sleep(0.2)
    assert (await Task.objects.aget(pk=second.pk)).status == Task.Status.QUEUED
    # Every board reads the note from the database.
    assert "Token budget reached" in await sync_to_async(BoardNote.read)()
    await wait_for(lambda: _done(second), timeout=30)
    assert await sync_to_async(BoardNote.read)() == ""


async def _done(task: Task) -> bool:
    return (await Task.objects.aget(pk=task.pk)).status == Task.Status.COMPLETED


async def test_a_tasks_session_takes_no_chat_messages(fake_repo, rt, api, user):
    """Sent to the API (or the chat page), a message to a task's session would run beside the task's own
    turns and fork its transcript: it is refused with a 409 that names the task."""
    scheduler = rt.tasks
    task = await services.create_task(engine=rt, user=user, prompt="slow 1")
    await wait_for(lambda: _running_turn(task))
    task = await Task.objects.aget(pk=task.pk)
    response = await api.post(
        "/api/analysis/chat",
        {"sessionId": str(task.session_id), "message": "write x.txt: sneaky"},
        content_type="application/json",
    )
    assert response.status_code == 409 and f"task #{task.pk}" in response.json()["error"]
    with pytest.raises(turns.TurnRefused, match=f"task #{task.pk}"):
        await turns.submit_message(engine=rt, session_id=task.session_id, user=user, text="hello")
    await scheduler.idle()
    assert [t.prompt async for t in Turn.objects.filter(session_id=task.session_id)] == ["slow 1"]
    assert not (Path(task.worktree_path) / "x.txt").exists()


async def test_a_skip_permissions_tasks_detached_processes_end_with_it(repo, scheduler, user, rt):
    sleep = unique_sleep()
    task = await settled(
        scheduler,
        await services.create_task(
            engine=rt,
            user=user,
            prompt=f"run: (setsid {' '.join(sleep)} &) ; (nohup {' '.join(sleep)} >/dev/null 2>&1 &) ; echo started",
            skip_permissions=True,
        ),
    )
    assert task.status == Task.Status.COMPLETED, task.error
    leftovers = [p for p in Path("/proc").iterdir() if p.name.isdigit() and "\0".join(sleep).encode() in _cmdline(p)]
    assert leftovers == []


def _cmdline(proc: Path) -> bytes:
    try:
        return (proc / "cmdline").read_bytes()
    except OSError:
        return b""


async def test_a_pull_request_through_the_api(team_remote, forge, scheduler, api, monkeypatch):
    made = (await api.post("/api/tasks", {"prompt": "write api.txt: via api", "project": "team"})).json()
    await scheduler.idle()
    got = (await api.get(f"/api/tasks/{made['id']}")).json()
    assert got["pull_request"] is None and "pull-request" in got["actions"] and "merge" in got["actions"]

    monkeypatch.setenv("CLAUDE_FORGE_TOKEN_TEAM", "wrong")
    refused = await api.post(f"/api/tasks/{made['id']}/pull-request")
    assert (
        refused.status_code == 409 and "GitHub refused the token in CLAUDE_FORGE_TOKEN_TEAM" in refused.json()["error"]
    )
    monkeypatch.setenv("CLAUDE_FORGE_TOKEN_TEAM", forge.token)

    opened = await api.post(f"/api/tasks/{made['id']}/pull-request")
    assert opened.status_code == 200, opened.content
    pull = opened.json()["pull_request"]
    assert {k: v for k, v in pull.items() if k != "checked_at"} == {
        "forge": "github",
        "repository": "acme/widgets",
        "number": 1,
        "url": "https://github.com/acme/widgets/pull/1",
        "state": "open",
    }
    assert pull["checked_at"]

    # Reading the task asks the forge (as its page does) once the last answer is a few seconds old.
    forge.merge("github", "acme/widgets", 1)
    await Task.objects.filter(pk=made["id"]).aupdate(pr_checked_at=timezone.now() - timedelta(minutes=1))
    got = (await api.get(f"/api/tasks/{made['id']}")).json()
    assert got["pull_request"]["state"] == "merged" and got["status"] == "merged" and got["actions"] == []
    assert forge.requests[-1].path == "/github/repos/acme/widgets/pulls/1"
    # Listing never asks.
    asked = len(forge.requests)
    assert [t["pull_request"]["state"] for t in (await api.get("/api/tasks")).json()["tasks"]] == ["merged"]
    assert len(forge.requests) == asked


async def test_an_unreachable_forge_leaves_the_last_known_state(team_remote, forge, scheduler, api, settings):
    made = (await api.post("/api/tasks", {"prompt": "write hi.txt: hi", "project": "team"})).json()
    await scheduler.idle()
    assert (await api.post(f"/api/tasks/{made['id']}/pull-request")).status_code == 200
    await Task.objects.filter(pk=made["id"]).aupdate(pr_checked_at=timezone.now() - timedelta(minutes=1))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there once closed
    settings.CLAUDE_GITHUB_API_URL = f"http://127.0.0.1:{port}/github"
    got = await api.get(f"/api/tasks/{made['id']}")
    assert got.status_code == 200 and got.json()["pull_request"]["state"] == "open"


@pytest.mark.parametrize("rt", [{"max_tasks": 2}], indirect=True)
async def test_never_more_tasks_show_running_than_the_limit(fake_repo, rt, api):
    """Three one-write tasks posted at once, polled as a script would: at most two are ever
    "running" (several rounds, since an overlap would come from timing).

    Each poll is one list request, a snapshot of one instant. Three GETs of single tasks are read
    at three instants and can show a finished task and the one that took its place both running."""
    most = 0
    for round_ in range(4):
        made = [
            await api.post("/api/tasks", {"prompt": f"write r{round_}-{p}.txt: {p}", "priority": p, "yolo": True})
            for p in (0, 1, 2)
        ]
        ids = {m.json()["id"] for m in made}
        while True:
            tasks = (await api.get("/api/tasks")).json()["tasks"]
            statuses = [t["status"] for t in tasks if t["id"] in ids]
            most = max(most, statuses.count("running"))
            if not any(s in ("queued", "running", "pending") for s in statuses):
                break
            await asyncio.sleep(0.02)
        assert statuses == ["completed"] * 3, statuses
    assert most == 2
    assert rt.tasks.max_seen == 2
