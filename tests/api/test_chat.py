"""The HTTP API for IDE plugins, called as a plugin calls it: against the REAL Claude Code CLI for
conversations, and on the stand-in process (tests/fake_session.py) for the statuses a busy chat, a
full pool, a timeout or a caller that hangs up answer (the CLI adds nothing to those)."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import uuid
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from api import chat as api
from chat.models import ApiToken, ProjectAccess, Session, Turn
from chat.services import turns
from chat.services.archive import archive_session
from chat.services.tokens import hash_key, issue_token
from project.settings import envprojects
from tests.api_client import ApiCaller
from tests.factories import logged_in_client, make_session, make_user
from tests.real_turns import new_chat
from tests.task_helpers import git

pytestmark = [pytest.mark.usefixtures("rt"), pytest.mark.django_db(transaction=True)]

CHAT = "/api/analysis/chat"
POOL = "/api/claude-code/pool/status"


def _projects(settings, tmp_path, workdir):
    other = tmp_path / "other-project"
    other.mkdir()
    settings.CLAUDE_PROJECTS = {"other": other}
    ProjectAccess.objects.create(project="other", everyone=True)
    return {"default": workdir, "other": other}


@pytest.fixture
def projects(claude_env, settings, tmp_path):
    """A shared project besides each member's own folder; turns run on the real CLI."""
    return _projects(settings, tmp_path, claude_env.workdir)


@pytest.fixture
def fake_projects(fake_cli, settings, tmp_path):
    """The same, with turns on the stand-in process."""
    return _projects(settings, tmp_path, settings.CLAUDE_WORKDIR)


async def user_with_token(username: str | None = None):
    user = await sync_to_async(make_user)(username=username)
    token = await sync_to_async(issue_token)(user=user)
    return user, token.key


def client_for(key: str, engine) -> ApiCaller:
    return ApiCaller.with_token(key, engine=engine)


async def post(client: ApiCaller, body: object):
    return await client.post(CHAT, body if isinstance(body, str | bytes) else json.dumps(body))


async def running(turn: Turn) -> None:
    while (await Turn.objects.aget(pk=turn.pk)).status != Turn.Status.RUNNING:
        await asyncio.sleep(0.02)


def error_of(response) -> str:
    body = response.json()
    assert set(body) == {"error"}, body
    return body["error"]


# ---------------------------------------------------------------------------------------
# Conversations


async def test_two_calls_with_one_session_id_share_memory_and_show_in_the_chat_list(projects, claude_env, rt):
    user, key = await user_with_token("ada")
    client = client_for(key, rt)
    sid = str(uuid.uuid4())

    first = await post(client, {"sessionId": sid.upper(), "message": "My name is Ada"})
    assert first.status_code == 200, first.content
    body = first.json()
    assert set(body) == {"sessionId", "answer", "workerId", "timestamp", "finishedAt"}
    assert body["sessionId"] == sid and body["answer"] == "Nice to meet you, Ada."
    host, pid = body["workerId"].rsplit(":", 1)
    assert host and pid.isdigit()
    assert isinstance(body["timestamp"], int)  # epoch milliseconds, as the design documents say
    assert datetime.fromisoformat(body["finishedAt"]).tzinfo is not None

    second = await post(client, {"sessionId": sid.upper(), "message": "What is my name?", "projectKey": "default"})
    assert second.status_code == 200, second.content
    assert second.json()["answer"] == "Your name is Ada."

    session = await Session.objects.aget(pk=sid)
    assert session.owner_id == user.pk and session.title == "My name is Ada"
    assert session.workdir == str(claude_env.workdir / str(user.pk)) and claude_env.transcript(sid).exists()
    assert await Turn.objects.filter(session=session, author=user).acount() == 2
    listing = await sync_to_async(lambda: logged_in_client(user=user).get(reverse("chat:index")))()
    assert session.get_absolute_url() in listing.content.decode() and "My name is Ada" in listing.content.decode()
    assert (await ApiToken.objects.aget(user=user)).last_used_at is not None


async def test_a_client_reads_the_documented_answer_timestamp_in_epoch_milliseconds(projects, rt):
    """What an IDE plugin written from the design documents does with the answer."""
    _, key = await user_with_token()
    before = datetime.now(UTC)

    response = await post(client_for(key, rt), {"sessionId": str(uuid.uuid4()), "message": "hello"})

    assert response.status_code == 200, response.content
    body = json.loads(response.content)  # a plain JSON parser, no help from the server's types
    assert type(body["timestamp"]) is int and body["timestamp"] > 10**12  # milliseconds, not seconds
    finished = datetime.fromtimestamp(body["timestamp"] / 1000, tz=UTC)
    assert before - timedelta(seconds=1) <= finished <= datetime.now(UTC) + timedelta(seconds=1)
    assert abs(datetime.fromisoformat(body["finishedAt"]) - finished) < timedelta(milliseconds=1)


async def test_project_key_chooses_the_working_directory_and_is_fixed_per_session(projects, claude_env, rt):
    _, key = await user_with_token()
    client = client_for(key, rt)
    sid = str(uuid.uuid4())

    made = await post(client, {"sessionId": sid, "message": "My name is Bo", "projectKey": "other"})
    assert made.status_code == 200, made.content
    assert (await Session.objects.aget(pk=sid)).workdir == str(projects["other"])
    assert claude_env.transcript(sid).exists()

    moved = await post(client, {"sessionId": sid, "message": "What is my name?", "projectKey": "default"})
    assert moved.status_code == 409 and "project 'other'" in error_of(moved)
    kept = await post(client, {"sessionId": sid, "message": "What is my name?"})
    assert kept.status_code == 200 and kept.json()["answer"] == "Your name is Bo."

    unknown = await post(client, {"sessionId": str(uuid.uuid4()), "message": "hi", "projectKey": "nope"})
    assert unknown.status_code == 400 and "Known keys: default, other" in error_of(unknown)


async def test_a_first_chat_through_the_api_makes_the_own_folder_a_repository(projects, claude_env, rt):
    """Tasks branch off a member's own folder: however it is first made (here by the API, naming
    it), it is a repository; and one an older release left without a .git is made one at its next chat."""
    user, key = await user_with_token()
    client = client_for(key, rt)
    own = claude_env.workdir / str(user.pk)
    made = await post(client, {"sessionId": str(uuid.uuid4()), "message": "hello", "projectKey": "default"})
    assert made.status_code == 200, made.content
    assert git(own, "log", "--format=%s") == "Your own folder\n"

    shutil.rmtree(own / ".git")
    again = await post(client, {"sessionId": str(uuid.uuid4()), "message": "hello again"})
    assert again.status_code == 200, again.content
    assert git(own, "log", "--format=%s") == "Your own folder\n"


async def test_another_users_session_id_is_not_found(projects, rt):
    owner = await sync_to_async(make_user)()
    theirs = await new_chat(engine=rt, user=owner, text="My name is Eve")
    _, key = await user_with_token()

    response = await post(client_for(key, rt), {"sessionId": str(theirs.id), "message": "What is my name?"})

    assert response.status_code == 404 and "not found" in error_of(response)
    assert await Turn.objects.filter(session=theirs).acount() == 1


# ---------------------------------------------------------------------------------------
# Failures of a turn


async def test_a_busy_session_answers_409_and_the_message_is_kept_but_never_run(fake_projects, settings, rt):
    settings.CLAUDE_API_BUSY_WAIT = 0.3
    user, key = await user_with_token()
    chat = await sync_to_async(make_session)(owner=user)
    slow = await turns.submit_message(engine=rt, session_id=chat.id, user=user, text="slow 1")

    response = await post(client_for(key, rt), {"sessionId": str(chat.id), "message": "echo: from the IDE"})

    assert response.status_code == 409 and "busy" in error_of(response) and response["Retry-After"]
    withdrawn = await Turn.objects.aget(session=chat, prompt="echo: from the IDE")
    assert withdrawn.status == Turn.Status.STOPPED and withdrawn.started_at is None
    assert "Not run" in withdrawn.error
    await rt.turns.idle()
    assert (await Turn.objects.aget(pk=slow.pk)).status == Turn.Status.DONE
    assert (await Turn.objects.aget(pk=withdrawn.pk)).status == Turn.Status.STOPPED
    assert "from the IDE" not in await sync_to_async(Path(chat.transcript_path).read_text)()


@pytest.mark.parametrize("rt", [{"max_processes": 1}], indirect=True)
async def test_a_full_pool_answers_503_and_withdraws_the_turn(fake_projects, settings, rt):
    settings.CLAUDE_API_BUSY_WAIT = 0.3
    user, key = await user_with_token()
    elsewhere = await sync_to_async(make_session)(owner=user)
    slow = await turns.submit_message(engine=rt, session_id=elsewhere.id, user=user, text="slow 1")
    await running(slow)
    sid = str(uuid.uuid4())

    response = await post(client_for(key, rt), {"sessionId": sid, "message": "echo: hi"})

    assert response.status_code == 503 and "All 1 Claude Code processes stayed busy" in error_of(response)
    await rt.turns.idle()
    turn = await Turn.objects.select_related("session").aget(session_id=sid)
    assert turn.status == Turn.Status.STOPPED and turn.started_at is None and "Not run" in turn.error
    assert not Path(turn.session.transcript_path).exists()


async def test_a_caller_that_hangs_up_takes_back_its_queued_turn(fake_projects, rt):
    user, _ = await user_with_token()
    chat = await sync_to_async(make_session)(owner=user)
    await turns.submit_message(engine=rt, session_id=chat.id, user=user, text="slow 1")
    call = asyncio.create_task(api.ask(engine=rt, user=user, session_id=chat.id, message="echo: never mind"))
    while not await Turn.objects.filter(session=chat, prompt="echo: never mind").aexists():
        await asyncio.sleep(0.02)

    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call

    await rt.turns.idle()
    turn = await Turn.objects.aget(session=chat, prompt="echo: never mind")
    assert turn.status == Turn.Status.STOPPED and turn.started_at is None and "hung up" in turn.error


async def test_a_turn_timeout_answers_504(fake_projects, settings, rt):
    settings.CLAUDE_TURN_TIMEOUT = 0.3
    _, key = await user_with_token()

    response = await post(client_for(key, rt), {"sessionId": str(uuid.uuid4()), "message": "slow 5"})

    assert response.status_code == 504 and "No answer within 0.3 seconds" in error_of(response)


async def test_a_cli_error_answers_502_with_the_turn_error(projects, monkeypatch, rt):
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    _, key = await user_with_token()

    response = await post(client_for(key, rt), {"sessionId": str(uuid.uuid4()), "message": "hello"})

    assert response.status_code == 502 and "not logged in" in error_of(response)


async def test_an_archived_session_answers_409(projects, rt):
    user, key = await user_with_token()
    chat = await new_chat(engine=rt, user=user, text="hello")
    await sync_to_async(archive_session)(session=chat, engine=rt)

    response = await post(client_for(key, rt), {"sessionId": str(chat.id), "message": "again"})

    assert response.status_code == 409 and "Restore" in error_of(response)


# ---------------------------------------------------------------------------------------
# Refused requests


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer wrong-token-wrong-token-wrong"},
    ],
)
async def test_requests_without_a_valid_token_get_401(headers, rt):
    await user_with_token()
    for response in (
        await ApiCaller(headers, engine=rt).post(CHAT, "{}"),
        await ApiCaller(headers, engine=rt).get(POOL),
    ):
        assert response.status_code == 401 and "token" in error_of(response)
        assert response["WWW-Authenticate"].startswith("Bearer")


async def test_an_inactive_users_token_gets_401(rt):
    user, key = await user_with_token()
    user.is_active = False
    await user.asave()
    assert (await client_for(key, rt).get(POOL)).status_code == 401


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ("{not json", 400, "JSON object"),
        ([1, 2], 400, "JSON object"),
        ({"message": "hi"}, 400, "sessionId must be a UUID"),
        ({"sessionId": "../../etc/passwd", "message": "hi"}, 400, "sessionId must be a UUID"),
        ({"sessionId": "0d3f4a6e-8b1c-4f7a-9e2d-5c6b7a8f9e0d/../x", "message": "hi"}, 400, "sessionId must be a UUID"),
        ({"sessionId": 12345, "message": "hi"}, 400, "sessionId must be a UUID"),
        ({"sessionId": "0d3f4a6e-8b1c-4f7a-9e2d-5c6b7a8f9e0d"}, 400, "message is missing"),
        ({"sessionId": "0d3f4a6e-8b1c-4f7a-9e2d-5c6b7a8f9e0d", "message": "   "}, 400, "message is missing"),
        ({"sessionId": "0d3f4a6e-8b1c-4f7a-9e2d-5c6b7a8f9e0d", "message": ["hi"]}, 400, "message is missing"),
        (
            {"sessionId": "0d3f4a6e-8b1c-4f7a-9e2d-5c6b7a8f9e0d", "message": "hi", "projectKey": ["x"]},
            400,
            "Unknown projectKey",
        ),
    ],
)
async def test_bad_requests_are_refused_before_anything_is_made(fake_projects, body, status, says, rt):
    _, key = await user_with_token()
    response = await post(client_for(key, rt), body)
    assert response.status_code == status and says in error_of(response)
    assert await Session.objects.acount() == 0


@pytest.mark.parametrize(
    ("models", "model", "says"),
    [
        (["sonnet", "opus"], "--dangerously-skip-permissions", "Send one of: sonnet, opus"),
        (["sonnet", "opus"], "haiku", "model 'haiku' is not a model this server offers"),
        (["sonnet", "opus"], 5, "model of type int"),
        ([], "sonnet", "this server offers no choice of model (CLAUDE_MODELS is empty)"),
    ],
)
async def test_a_model_the_server_does_not_offer_is_refused_before_anything_is_made(
    fake_projects, settings, models, model, says, rt
):
    settings.CLAUDE_MODELS = models
    _, key = await user_with_token()
    response = await post(client_for(key, rt), {"sessionId": str(uuid.uuid4()), "message": "hi", "model": model})
    assert response.status_code == 400 and says in error_of(response)
    assert await Session.objects.acount() == 0


async def test_a_chat_starts_with_the_model_asked_for_and_switches_when_asked(projects, settings, rt):
    settings.CLAUDE_MODELS = ["claude-stand-in-small", "claude-stand-in-large"]
    user, key = await user_with_token()
    client, sid = client_for(key, rt), str(uuid.uuid4())
    first = await post(client, {"sessionId": sid, "message": "which model", "model": "claude-stand-in-large"})
    assert first.status_code == 200, first.content
    assert "from the model claude-stand-in-large" in first.json()["answer"]
    kept = await post(client, {"sessionId": sid, "message": "which model"})
    assert "from the model claude-stand-in-large" in kept.json()["answer"]
    switched = await post(client, {"sessionId": sid, "message": "which model", "model": "claude-stand-in-small"})
    assert "from the model claude-stand-in-small" in switched.json()["answer"]
    assert (await Session.objects.aget(pk=sid)).model == "claude-stand-in-small"


async def test_a_message_over_the_limit_gets_413_with_the_limit(fake_projects, settings, rt):
    settings.CLAUDE_MAX_MESSAGE_CHARS = 1000
    _, key = await user_with_token()
    response = await post(client_for(key, rt), {"sessionId": str(uuid.uuid4()), "message": "x" * 1001})
    assert response.status_code == 413 and "1,001 characters" in error_of(response) and "1,000" in error_of(response)
    assert await Session.objects.acount() == 0


async def test_wrong_methods_get_405_with_allow(rt):
    _, key = await user_with_token()
    client = client_for(key, rt)
    assert (got := await client.get(CHAT)).status_code == 405 and got["Allow"] == "POST" and "POST" in error_of(got)
    assert (got := await client.post(POOL)).status_code == 405 and got["Allow"] == "GET"


# ---------------------------------------------------------------------------------------
# Pool status, tokens


@pytest.mark.parametrize("rt", [{"max_processes": 3}], indirect=True)
async def test_pool_status_reports_the_pool(fake_projects, settings, rt):
    _, key = await user_with_token()
    client = client_for(key, rt)
    assert (await post(client, {"sessionId": str(uuid.uuid4()), "message": "hello"})).status_code == 200

    response = await client.get(POOL)

    assert response.status_code == 200
    assert response.json() == {"active": 0, "limit": 3, "waiting": 0, "totalRequests": 1}


def test_api_token_command_prints_a_new_token_as_the_last_word():
    user = make_user(username="alice")
    out = StringIO()
    call_command("api_token", "alice", stdout=out)
    line = out.getvalue().strip()
    printed = line.split()[-1]
    assert line.startswith("API token for alice: ") and ApiToken.objects.get(user=user).key_hash == hash_key(printed)
    # Only a hash is kept: the token is in no column of the table.
    assert printed not in str(list(ApiToken.objects.values_list()))

    call_command("api_token", "alice", stdout=(again := StringIO()))
    assert again.getvalue().split()[-1] != printed
    assert ApiToken.objects.get(user=user).key_hash == hash_key(again.getvalue().split()[-1])

    with pytest.raises(CommandError, match="no user 'bob'"):
        call_command("api_token", "bob")


def test_settings_page_shows_a_new_token_once_and_regenerates_it():
    user = make_user()
    assert Client().get("/settings/").status_code == 302  # login required
    client = logged_in_client(user=user)
    page = client.get("/settings/")
    assert b"Create token" in page.content and b'href="/settings/"' in page.content

    made = client.post("/settings/token/")
    old = re.search(rb'id="api-token"[^>]*value="([^"]+)"', made.content).group(1).decode()
    assert ApiToken.objects.get(user=user).key_hash == hash_key(old) and b"shown only this once" in made.content
    page = client.get("/settings/")
    assert old.encode() not in page.content and f"…{old[-4:]}".encode() in page.content
    assert b"New token" in page.content and b"data-confirm=" in page.content

    response = client.post("/settings/token/")
    new = re.search(rb'id="api-token"[^>]*value="([^"]+)"', response.content).group(1).decode()
    assert new != old and ApiToken.objects.get(user=user).key_hash == hash_key(new)
    assert b"old one no longer works" in response.content
    assert client.get("/settings/token/").status_code == 405


async def test_a_regenerated_token_replaces_the_old_one_at_once(rt):
    user, old = await user_with_token()
    client = await sync_to_async(logged_in_client)(user=user)
    made = await sync_to_async(client.post)("/settings/token/")
    new = re.search(rb'id="api-token"[^>]*value="([^"]+)"', made.content).group(1).decode()
    assert (await client_for(old, rt).get(POOL)).status_code == 401
    assert (await client_for(new, rt).get(POOL)).status_code == 200


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("alpha", "not KEY=/absolute/path"),
        ("alpha=relative/dir", "must be absolute"),
        ("a b=/x", "may only hold"),
        ("a=/x,a=/y", "given twice"),
        ("default=/x", "each member's own folder"),
    ],
)
def test_malformed_claude_projects_stop_the_start(monkeypatch, tmp_path, value, says):
    monkeypatch.setenv("CLAUDE_PROJECTS", value)
    with pytest.raises(ImproperlyConfigured, match=says):
        envprojects("CLAUDE_PROJECTS")


def test_claude_projects_are_read(monkeypatch, tmp_path):
    monkeypatch.setenv("CLAUDE_PROJECTS", f" api = {tmp_path}/api , web={tmp_path}/web ")
    assert envprojects("CLAUDE_PROJECTS") == {"api": tmp_path / "api", "web": tmp_path / "web"}


async def test_a_caller_that_hangs_up_while_its_turn_runs_leaves_no_stuck_turn(fake_projects, rt):
    """The turn runs in the runtime's own context, never the request's: the caller going away
    (its request cancelled) changes nothing for the turn, nor for the messages queued behind it."""
    user, _ = await user_with_token()
    chat = await sync_to_async(make_session)(owner=user)
    call = asyncio.create_task(api.ask(engine=rt, user=user, session_id=chat.id, message="slow 1"))
    while not await Turn.objects.filter(session=chat, prompt="slow 1", status=Turn.Status.RUNNING).aexists():
        await asyncio.sleep(0.02)
    behind = await turns.submit_message(engine=rt, session_id=chat.id, user=user, text="echo: from the browser")
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await rt.turns.idle()
    statuses = [(t.prompt, t.status) async for t in Turn.objects.filter(session=chat).order_by("id")]
    assert statuses == [("slow 1", Turn.Status.DONE), ("echo: from the browser", Turn.Status.DONE)]
    assert (await Turn.objects.aget(pk=behind.pk)).error == ""
