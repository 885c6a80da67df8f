"""What the API answers when a request cannot be served: always JSON {"error": ...} with the status
a script can act on, never an HTML page. None of these needs the CLI: they are refused first."""

from __future__ import annotations

import logging

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient

from chat.models import Session
from chat.services.tokens import issue_token
from tasks.models import Task
from tests.api_client import ApiCaller
from tests.factories import make_user

pytestmark = [pytest.mark.django_db(transaction=True)]

CHAT = "/api/analysis/chat"
SID = "0d3f4a6e-8b1c-4f7a-9e2d-5c6b7a8f9e0d"


@pytest.fixture
async def caller() -> ApiCaller:
    user = await sync_to_async(make_user)()
    return ApiCaller.with_token((await sync_to_async(issue_token)(user=user)).key)


@pytest.fixture
def projects(settings, tmp_path):
    settings.CLAUDE_PROJECTS = {"web": tmp_path / "web"}
    settings.CLAUDE_WORKDIR = tmp_path


def error_of(response, status: int) -> str:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    return body["error"]


def field_errors_of(response, status: int = 400) -> dict[str, str]:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error", "fields"} and body["error"], body
    return body["fields"]


async def test_paths_the_api_does_not_have_answer_json_404(caller):
    for path in ("/api/", "/api/nope", "/api/tasks/", "/api/tasks/abc", "/api/tasks/1/pause/", f"{CHAT}/"):
        assert "/api/openapi.json" in error_of(await caller.get(path), 404), path
    assert "no API endpoint" in error_of(await caller.post("/api/nope", "{}"), 404)


async def test_another_method_answers_json_405_with_allow(caller):
    for method, path, allowed in [
        ("delete", "/api/tasks", "GET, POST"),
        ("get", "/api/tasks/1/pause", "POST"),
        ("post", "/api/tasks/1", "GET"),
        ("get", CHAT, "POST"),
        ("post", "/api/openapi.json", "GET, HEAD"),
    ]:
        response = await getattr(caller, method)(path)
        assert response["Allow"] == allowed, (method, path)
        assert method.upper() in error_of(response, 405) and allowed.split(", ")[0] in error_of(response, 405)


async def test_posts_need_no_csrf_token_a_bearer_token_is_the_credential(caller):
    strict = AsyncClient(enforce_csrf_checks=True)
    for path in (CHAT, "/api/tasks", "/api/tasks/1/pause", "/api/nope"):
        response = await strict.post(path, "{}", content_type="application/json", headers=caller.headers)
        assert response.status_code != 403 and response["Content-Type"].startswith("application/json"), path


async def test_a_body_over_the_upload_limit_answers_413(caller, projects, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    big = "x" * 2000
    assert "too large" in error_of(await caller.post(CHAT, {"sessionId": SID, "message": big}), 413)
    assert "too large" in error_of(await caller.post("/api/tasks", {"prompt": big}), 413)
    assert await Session.objects.acount() == 0 and await Task.objects.acount() == 0


async def test_an_unexpected_failure_answers_json_500_and_is_logged(caller, caplog):
    # No engine runs in this process (as under a bare `manage.py runserver`): the pool cannot be read.
    with caplog.at_level(logging.ERROR, logger="api.errors"):
        said = error_of(await caller.get("/api/claude-code/pool/status"), 500)
    assert "EngineNotRunning" in said and "log" in said
    assert any(record.exc_info and "pool/status" in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize(
    ("body", "status", "field", "says"),
    [
        ({"prompt": "x", "priority": "urgent"}, 400, "priority", "whole number from -1000 to 1000"),
        ({"prompt": "x", "priority": 1001}, 400, "priority", "whole number"),
        ({"prompt": "x", "priority": True}, 400, "priority", "whole number"),
        ({"prompt": "x", "priority": 2.5}, 400, "priority", "whole number"),
        ({"prompt": "x", "yolo": "yes"}, 400, "yolo", "true or false"),
        ({"prompt": "x", "yolo": 1}, 400, "yolo", "true or false"),
        ({"prompt": "x", "title": "t" * 121}, 400, "title", "at most 120 characters"),
        ({"prompt": "x", "project": "nope"}, 400, "project", "known: default, web"),
        ({"prompt": "x", "project": ["web"]}, 400, "project", "Unknown project of type list"),
        ({"prompt": "   "}, 400, "prompt", "Say what the task should do"),
        ({"prompt": 42}, 400, "prompt", "Say what the task should do"),
        ({"title": "no prompt"}, 400, "prompt", "Say what the task should do"),
        ({"prompt": "x", "branch": "../x"}, 400, "branch", "Unknown field 'branch'"),
        ({"prompt": "x" * 1001}, 413, "prompt", "1,001 characters long; the limit is 1,000"),
        ({"prompt": "x", "title": "nul \x00 here"}, 400, "title", "title holds a NUL character"),
        ({"prompt": "x", "title": "hi \ud800 there"}, 400, "title", "title holds a lone surrogate"),
        ({"prompt": "nul \x00 here"}, 400, "prompt", "prompt holds a NUL character"),
        ({"prompt": "hi \udfff there"}, 400, "prompt", "prompt holds a lone surrogate"),
    ],
)
async def test_task_input_is_refused_field_by_field_before_anything_is_made(
    caller, projects, settings, body, status, field, says
):
    settings.CLAUDE_MAX_MESSAGE_CHARS = 1000
    fields = field_errors_of(await caller.post("/api/tasks", body), status)
    assert set(fields) == {field} and says in fields[field]
    assert await Task.objects.acount() == 0


async def test_every_wrong_field_is_named_at_once(caller, projects):
    response = await caller.post("/api/tasks", {"priority": "high", "yolo": "on", "colour": "red"})
    fields = field_errors_of(response)
    assert set(fields) == {"prompt", "priority", "yolo", "colour"}
    assert all(reason in response.json()["error"] for reason in fields.values())


@pytest.mark.parametrize("body", ["{not json", "[1, 2]", '"text"', "null"])
async def test_a_body_that_is_not_a_json_object_is_refused_as_such(caller, projects, body):
    assert "JSON object" in error_of(await caller.post(CHAT, body), 400)
    assert "JSON object" in (await caller.post("/api/tasks", body)).json()["error"]
    if body != "null":  # a follow-up is optional: null is none
        assert "JSON object" in (await caller.post("/api/tasks/1/resume", body)).json()["error"]


async def test_a_follow_up_is_checked_like_any_body(caller, projects, settings):
    settings.CLAUDE_MAX_MESSAGE_CHARS = 10
    assert set(field_errors_of(await caller.post("/api/tasks/1/resume", {"message": 5}))) == {"message"}
    assert set(field_errors_of(await caller.post("/api/tasks/1/resume", {"msg": "go on"}))) == {"msg"}
    assert set(field_errors_of(await caller.post("/api/tasks/1/resume", {"message": "x" * 11}), 413)) == {"message"}
    # A valid body, or none: then the task is looked up (there is none).
    assert "There is no task 1" in error_of(await caller.post("/api/tasks/1/resume", {"message": "go on"}), 404)
    assert "There is no task 1" in error_of(await caller.post("/api/tasks/1/resume"), 404)


async def test_unknown_actions_and_statuses_say_which_are_known(caller):
    assert "pause, resume, terminate, merge, discard" in error_of(await caller.post("/api/tasks/1/explode"), 404)
    assert "There is no task 0" in error_of(await caller.get("/api/tasks/0"), 404)
    assert "queued" in field_errors_of(await caller.get("/api/tasks?status=weird"))["status"]


async def test_a_chat_request_with_several_faults_answers_all_of_them(caller, projects, settings):
    settings.CLAUDE_MAX_MESSAGE_CHARS = 10
    said = error_of(await caller.post(CHAT, {"sessionId": "nope", "message": "x" * 11, "projectKey": "x"}), 413)
    assert "sessionId must be a UUID" in said and "11 characters" in said and "Known keys: default, web" in said
    assert await Session.objects.acount() == 0


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ('{"sessionId": "0d3f4a6e-8b1c-4f7a-9e2d-5c6b7a8f9e0d", "message": "hi \\ud800 there"}', "lone surrogate"),
        ('{"sessionId": "0d3f4a6e-8b1c-4f7a-9e2d-5c6b7a8f9e0d", "message": "nul \\u0000 here"}', "NUL character"),
        ("[" * 100_000 + "]" * 100_000, "must be a JSON object"),
    ],
    ids=["lone surrogate", "NUL", "nested 100,000 deep"],
)
async def test_text_that_cannot_be_stored_and_absurd_nesting_answer_400_not_500(caller, projects, body, says):
    response = await caller.post("/api/analysis/chat", body)
    assert says in error_of(response, 400)
