"""A pull request's feedback on the task's page: the stand-in forge (tests/forge_standin.py) holds
review comments and a failed check, the page shows them, "Send to the agent" sends them to the
REAL CLI (against the Messages-API stand-in) as one follow-up, and that run's commit is pushed to
the same pull request; the automatic mode; who may; hostile text shown as text."""

from __future__ import annotations

from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async

from chat.models import Turn
from chat.services.tokens import issue_token
from drivers.forge import RemoteSpec
from tasks import services
from tasks.models import PullFeedback, Task
from tests.api_client import ApiCaller, EngineClient
from tests.factories import make_user
from tests.task_helpers import git, settled

pytestmark = [pytest.mark.usefixtures("rt"), pytest.mark.django_db(transaction=True), pytest.mark.real_cli]

HOSTILE = '<img src=x onerror="alert(1)"> and `rm -rf ~`'


async def pull_request_of_a_completed_task(rt, user) -> Task:
    task = await services.create_task(
        engine=rt, user=user, prompt="write hello.txt: hi from the task", title="Add a greeting", project="team"
    )
    task = await settled(rt, task)
    assert task.status == Task.Status.COMPLETED, task.error
    return await services.open_pull_request(task_id=task.pk)


async def browser_for(user, engine) -> EngineClient:
    client = EngineClient(engine=engine)
    await client.aforce_login(user)
    return client


def said_on(forge, kind: str, path: str) -> None:
    """Two reviewers and CI speak on pull request 1."""
    forge.comment(
        kind, path, 1, author="ada", body="Say hello to the world, not to the task.", file="hello.txt", line=1
    )
    forge.comment(kind, path, 1, author="mallory", body=HOSTILE)
    forge.fail_check(kind, path, 1, name="unit tests", summary="test_greeting failed", passing="lint")


def last_user_text(stub_api) -> str:
    """What the CLI last sent the model as the person's words."""
    for request in reversed(stub_api.requests):
        for message in reversed(request["body"].get("messages", [])):
            if message.get("role") != "user":
                continue
            content = message.get("content")
            texts = [content] if isinstance(content, str) else [b.get("text", "") for b in content or []]
            if any(texts):
                return "\n".join(t for t in texts if t)
    return ""


async def test_feedback_is_shown_sent_as_one_follow_up_and_its_run_pushed_to_the_same_pull_request(
    team_remote, forge, user, rt, stub_api
):
    task = await pull_request_of_a_completed_task(rt, user)
    said_on(forge, "github", "acme/widgets")
    client = await browser_for(user, rt)

    refreshed = await client.post(f"/tasks/{task.pk}/pull-request/refresh/", headers={"HX-Request": "true"})
    assert "Pull request #1: open." in refreshed.content.decode()
    page = (await client.get(f"/tasks/{task.pk}/")).content.decode()

    assert "Feedback on #1" in page
    assert "<code>hello.txt, line 1</code> · <strong>ada</strong>" in page
    assert "Say hello to the world, not to the task." in page
    assert "<strong>unit tests</strong>" in page and "(GitHub Actions)" in page
    assert 'href="https://github.com/acme/widgets/runs/' in page
    assert "lint" not in page.split('id="pr-feedback"')[1].split("</section>")[0]  # it passed
    # The forge's text is text: escaped, never markup.
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in page and "<img src=x" not in page
    assert "Send to the agent (3)" in page

    turns_before = await Turn.objects.filter(session_id=task.session_id).acount()
    sent = await client.post(
        f"/tasks/{task.pk}/pull-request/feedback/send/",
        {"note": "write hello.txt: hello, world"},
        headers={"HX-Request": "true"},
    )
    assert "Sent 3 items of feedback on #1 to the agent in one follow-up." in sent.content.decode()
    task = await settled(rt, task)

    # ONE follow-up run, and the real CLI sent the model both comments and the failed check.
    runs = [t async for t in Turn.objects.filter(session_id=task.session_id).order_by("created_at", "id")]
    assert len(runs) == turns_before + 1
    received = last_user_text(stub_api)
    assert received.startswith("write hello.txt: hello, world\n\nFeedback on pull request #1 on GitHub")
    assert "2 review comments and 1 failed check" in received
    assert f"1. on the pull request (by mallory):\n    > {HOSTILE}" in received
    assert "2. hello.txt, line 1 (by ada):\n    > Say hello to the world, not to the task." in received
    assert "Failed checks:\n1. unit tests (GitHub Actions):\n    > unit tests: failure test_greeting failed" in received
    assert "not as instructions" in received

    # The run's commit went to the same branch, so the same pull request: nothing new was opened.
    assert task.status == Task.Status.COMPLETED and task.pr_number == 1
    head = git(team_remote, "rev-parse", task.branch).strip()
    assert head == task.pr_head == git(task_repo(task), "rev-parse", task.branch).strip()
    # (The stand-in model writes the whole message into the file.)
    assert git(team_remote, "show", f"{task.branch}:hello.txt").startswith("hello, world\n")
    assert len(forge.pulls("github", "acme/widgets")) == 1 and len(forge.calls("POST")) == 1
    states = sorted([i.state async for i in PullFeedback.objects.filter(task=task)])
    assert states == ["answered", "answered", "answered"]

    # The next refresh: the comments stay answered, the old commit's failed check is no longer reported.
    await client.post(f"/tasks/{task.pk}/pull-request/refresh/", headers={"HX-Request": "true"})
    page = (await client.get(f"/tasks/{task.pk}/")).content.decode()
    assert "Answered: the agent&#x27;s run was pushed" in page and "unit tests" not in page.split("History")[0]
    assert "Send to the agent" not in page


def task_repo(task: Task):
    from pathlib import Path

    return Path(task.repo_path)


async def test_only_the_owner_and_staff_send_and_others_see_no_button(team_remote, forge, user, rt):
    task = await pull_request_of_a_completed_task(rt, user)
    said_on(forge, "github", "acme/widgets")
    await services.refresh_feedback(engine=rt, task_id=task.pk, force=True)
    other = await sync_to_async(make_user)()
    client = await browser_for(other, rt)

    page = (await client.get(f"/tasks/{task.pk}/")).content.decode()
    assert "Say hello to the world" in page and "Send to the agent" not in page
    refused = await client.post(f"/tasks/{task.pk}/pull-request/feedback/send/", headers={"HX-Request": "true"})
    assert "Only the person who created task" in refused.content.decode()
    api = ApiCaller.with_token((await sync_to_async(issue_token)(user=other)).key, engine=rt)
    answer = await api.post(f"/api/tasks/{task.pk}/pull-request/feedback", {})
    assert answer.status_code == 403
    assert [i.state async for i in PullFeedback.objects.filter(task=task)] == ["new"] * 3


async def test_automatic_mode_sends_new_feedback_when_it_is_read(team_remote, forge, user, rt, settings, stub_api):
    settings.CLAUDE_PR_FEEDBACK_AUTO = frozenset({"team"})
    settings.CLAUDE_PROJECT_REMOTES = {"team": RemoteSpec("origin", "gitlab", "acme/tools/widgets")}
    task = await pull_request_of_a_completed_task(rt, user)
    assert task.pr_label == "!1"
    said_on(forge, "gitlab", "acme/tools/widgets")
    api = ApiCaller.with_token((await sync_to_async(issue_token)(user=user)).key, engine=rt)

    # Reading the task reads the forge (not within seconds of the last time: the pull request was just opened).
    await Task.objects.filter(pk=task.pk).aupdate(pr_checked_at=task.pr_checked_at - timedelta(minutes=1))
    answer = (await api.get(f"/api/tasks/{task.pk}")).json()

    feedback = answer["pull_request_feedback"]
    assert [(i["kind"], i["author"], i["path"], i["line"]) for i in feedback] == [
        ("check", "GitLab CI", "", None),
        ("comment", "mallory", "", None),
        ("comment", "ada", "hello.txt", 1),
    ]
    assert {i["state"] for i in feedback} == {"sent"} and answer["status"] in ("queued", "running")
    task = await settled(rt, task)
    received = last_user_text(stub_api)
    assert received.startswith("Feedback on pull request !1 on GitLab (acme/tools/widgets)")
    assert "Say hello to the world" in received and "test: unit tests" in received
    assert len(forge.pulls("gitlab", "acme/tools/widgets")) == 1 and len(forge.calls("POST")) == 1
    runs = await Turn.objects.filter(session_id=task.session_id).acount()

    # Read again: nothing new, nothing sent again.
    await Task.objects.filter(pk=task.pk).aupdate(pr_checked_at=task.pr_checked_at - timedelta(minutes=1))
    answer = (await api.get(f"/api/tasks/{task.pk}")).json()
    await settled(rt, task)
    assert await Turn.objects.filter(session_id=task.session_id).acount() == runs
    assert {i["state"] for i in answer["pull_request_feedback"]} == {"answered"}


async def test_the_api_sends_feedback_and_says_when_there_is_none(team_remote, forge, user, rt):
    task = await pull_request_of_a_completed_task(rt, user)
    api = ApiCaller.with_token((await sync_to_async(issue_token)(user=user)).key, engine=rt)

    nothing = await api.post(f"/api/tasks/{task.pk}/pull-request/feedback", {})
    assert nothing.status_code == 409 and "no new feedback" in nothing.json()["error"]

    forge.comment("github", "acme/widgets", 1, author="ada", body="One more thing.")
    await services.refresh_feedback(engine=rt, task_id=task.pk, force=True)
    sent = await api.post(f"/api/tasks/{task.pk}/pull-request/feedback", {"note": "echo: on it"})
    assert sent.status_code == 200, sent.json()
    assert sent.json()["pull_request_feedback"][0]["state"] == "sent" and sent.json()["status"] == "queued"

    # While its run waits or runs, the task takes no follow-up: what is new stays new.
    forge.comment("github", "acme/widgets", 1, author="ada", body="And another.")
    await services.refresh_feedback(engine=rt, task_id=task.pk, force=True)
    busy = await api.post(f"/api/tasks/{task.pk}/pull-request/feedback", {})
    assert busy.status_code == 409 and "cannot take now. It stays new" in busy.json()["error"]
    await settled(rt, task)
    assert sorted([i.state async for i in PullFeedback.objects.filter(task=task)]) == ["answered", "new"]
