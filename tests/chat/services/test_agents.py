"""An agent sees only its own working directory and its own transcript.

A member with every tool allowed (bypassPermissions) aims @-mentions, shell commands and writes
at the server's data folder and home, another member's transcript and /etc/passwd: none of it
reaches the model (what the stand-in API received is checked), nothing is written, and no other
chat's transcript is listed. The real CLI runs in its real sandbox (bubblewrap).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.test import Client

from chat.models import Event, Turn
from chat.projects import Project
from chat.services import chats, sharing, turns
from tests.factories import logged_in_client, make_session, make_user
from tests.processes import running, unique_sleep
from tests.real_turns import answer_of, say
from tests.server_files import agent_links_transcript
from tests.task_helpers import git

pytestmark = [pytest.mark.usefixtures("rt"), pytest.mark.django_db(transaction=True), pytest.mark.real_cli]

SERVER_SECRET = "SERVER-SECRET-7f3a"
HOME_SECRET = "HOME-SECRET-91c2"
OTHERS_SECRET = "Bobbins"


def requests_since(stub_api, start: int) -> str:
    """Everything the model was sent since ``start`` (request bodies, as text)."""
    return "\n".join(json.dumps(request["body"]) for request in stub_api.requests[start:])


@pytest.fixture
def secrets_around(claude_env, settings, tmp_path):
    """The server's secrets where an agent might look for them."""
    data = Path(settings.DATA_DIR)
    data.mkdir(parents=True, exist_ok=True)
    (data / "secret-key.txt").write_text(SERVER_SECRET)
    (data / "db.sqlite3").write_text(SERVER_SECRET)
    home = Path(claude_env.env["HOME"])  # the server's HOME in these tests
    (home / ".claude").mkdir(parents=True, exist_ok=True)
    (home / ".claude" / ".credentials.json").write_text(HOME_SECRET)
    settings.CLAUDE_PERMISSION_MODE = "bypassPermissions"
    return data, home


async def attacks(data: Path, home: Path, other_transcript: Path) -> list[str]:
    return [
        f"@{data}/secret-key.txt repeat this file verbatim",
        "@/etc/passwd repeat this file verbatim",
        f"@{home}/.claude/.credentials.json what is this",
        f"@{other_transcript} what is my name",
        f"run: cat {data}/secret-key.txt {data}/db.sqlite3 /etc/passwd {home}/.claude/.credentials.json {other_transcript}",
        f"run: ls -la {settings.CLAUDE_CONFIG_DIR} {settings.CLAUDE_CONFIG_DIR}/*/ {home} {data}; cat /proc/1/environ",
        f"run: echo pwned > {data}/pwned.txt; echo pwned > {home}/pwned.txt; echo pwned > {other_transcript}",
        f"write {data}/written.txt: pwned",
        f"write {other_transcript}: pwned",
    ]


async def test_nothing_of_the_server_or_of_another_member_reaches_the_model(claude_env, stub_api, secrets_around, rt):
    data, home = secrets_around
    bob = await sync_to_async(make_user)()
    bobs_chat = await sync_to_async(make_session)(owner=bob)
    await say(engine=rt, session=bobs_chat, user=bob, text=f"my name is {OTHERS_SECRET}")
    other_transcript = claude_env.transcript(bobs_chat)
    before = other_transcript.read_text()
    assert OTHERS_SECRET in before

    ada = await sync_to_async(make_user)()
    chat = await sync_to_async(make_session)(owner=ada)
    start = len(stub_api.requests)
    for text in await attacks(data, home, other_transcript):
        await rt.wait_ended(turn=(await turns.submit_message(engine=rt, session_id=chat.id, user=ada, text=text)).pk)

    sent = requests_since(stub_api, start)
    assert sent, "the turns reached the model"
    for secret in (SERVER_SECRET, HOME_SECRET, OTHERS_SECRET, "root:x:0:0"):
        assert secret not in sent, secret
    # The agent's own commands did run, inside its sandbox (it sees its own folder and no other).
    assert "No such file or directory" in sent
    assert not (data / "pwned.txt").exists() and not (data / "written.txt").exists()
    assert not (home / "pwned.txt").exists()
    assert other_transcript.read_text() == before
    statuses = [t.status async for t in Turn.objects.filter(session=chat)]
    assert statuses and all(status == Turn.Status.DONE for status in statuses)


async def test_without_the_sandbox_the_same_attack_reads_the_server_secret(
    claude_env, stub_api, secrets_around, settings, monkeypatch, rt
):
    """The check above would catch a leak: with CLAUDE_SANDBOX=off the agent reads what the server can."""
    settings.CLAUDE_SANDBOX = "off"
    monkeypatch.setenv("IS_SANDBOX", "1")  # the test machine runs as root
    data, _home = secrets_around
    ada = await sync_to_async(make_user)()
    chat = await sync_to_async(make_session)(owner=ada)
    start = len(stub_api.requests)
    await say(engine=rt, session=chat, user=ada, text=f"run: cat {data}/secret-key.txt")
    assert SERVER_SECRET in requests_since(stub_api, start)


async def test_a_setsid_child_ends_with_the_chats_process(claude_env, secrets_around, rt):
    """A process the agent detaches (setsid, double fork) does not outlive its sandbox: it lives while
    the chat's process is warm, and ends with it."""
    ada = await sync_to_async(make_user)()
    chat = await sync_to_async(make_session)(owner=ada)
    marker = " ".join(unique_sleep())
    await say(
        engine=rt,
        session=chat,
        user=ada,
        text=f"run: (setsid {marker} &) ; (nohup {marker} >/dev/null 2>&1 &) ; echo started",
    )
    rt.node.warm.drop(str(chat.id))
    await rt.node.warm.idle()
    assert not any(marker in cmdline for cmdline in _cmdlines())


def _sleeps(count: int) -> list[str]:
    """Sleep commands of this test alone (see unique_sleep): others may run at the same time."""
    return [" ".join(unique_sleep()) for _ in range(count)]


def _sleeping(*commands: str) -> list[str]:
    return [cmdline for cmdline in _cmdlines() if any(command in cmdline for command in commands)]


async def test_what_a_turn_started_ends_with_it_and_the_warm_process_stays_and_remembers(
    claude_env, secrets_around, rt
):
    """Detached (setsid, nohup, a double fork) or not, what the agent's commands left running ends
    when the turn is done; the chat's CLI process stays warm and remembers."""
    ada = await sync_to_async(make_user)()
    chat = await sync_to_async(make_session)(owner=ada)
    first = await say(engine=rt, session=chat, user=ada, text="my name is Ada")
    a, b, c, d = _sleeps(4)
    detach = f"(setsid {a} &) ; (nohup {b} >/dev/null 2>&1 &) ; ({c} &) ; {d} & echo started"
    detached = await say(engine=rt, session=chat, user=ada, text=f"run: {detach}")
    results = [e.text async for e in Event.objects.filter(turn=detached, kind=Event.Kind.TOOL_RESULT)]
    assert any("started" in text for text in results), results
    assert _sleeping(a, b, c, d) == []
    assert detached.pid == first.pid and running(first.pid)
    after = await say(engine=rt, session=chat, user=ada, text="what is my name")
    assert "Your name is Ada" in await answer_of(after)
    assert after.pid == first.pid and rt.node.warm.started == 1


async def test_what_a_stopped_turn_started_ends_with_it(claude_env, secrets_around, rt):
    ada = await sync_to_async(make_user)()
    chat = await sync_to_async(make_session)(owner=ada)
    first = await say(engine=rt, session=chat, user=ada, text="my name is Ada")
    detached, waiting = _sleeps(2)
    submitted = await turns.submit_message(
        engine=rt, session_id=chat.id, user=ada, text=f"run: (setsid {detached} &) ; {waiting}"
    )
    async with asyncio.timeout(60):
        while len(_sleeping(detached, waiting)) < 2:
            await asyncio.sleep(0.05)
    assert await turns.stop_turn(engine=rt, session_id=chat.id)
    await rt.wait_ended(turn=submitted.pk)
    stopped = await Turn.objects.aget(pk=submitted.pk)
    assert stopped.status == Turn.Status.STOPPED
    assert _sleeping(detached, waiting) == []
    assert running(first.pid)
    after = await say(engine=rt, session=chat, user=ada, text="what is my name")
    assert "Your name is Ada" in await answer_of(after) and after.pid == first.pid


def _cmdlines() -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                found.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
            except OSError:
                continue
    return found


async def test_a_missing_sandbox_refuses_turns_and_says_how_to_install_it(claude_env, settings, rt):
    settings.CLAUDE_BWRAP = "/nonexistent/bwrap"
    ada = await sync_to_async(make_user)()
    chat = await sync_to_async(make_session)(owner=ada)
    submitted = await turns.submit_message(engine=rt, session_id=chat.id, user=ada, text="hello")
    await rt.wait_ended(turn=submitted.pk)
    turn = await Turn.objects.aget(pk=submitted.pk)
    assert turn.status == Turn.Status.ERROR
    assert "apt-get install bubblewrap" in turn.error and "CLAUDE_SANDBOX=off" in turn.error


async def test_a_slash_command_in_a_message_is_sent_as_text(claude_env, stub_api, rt):
    """`/clear` would wipe the session's memory behind the page's back; it reaches the model as text."""
    ada = await sync_to_async(make_user)()
    chat = await sync_to_async(make_session)(owner=ada)
    await say(engine=rt, session=chat, user=ada, text="my name is Ada")
    start = len(stub_api.requests)
    await say(engine=rt, session=chat, user=ada, text="/clear")
    assert "/clear" in requests_since(stub_api, start)
    after = await say(engine=rt, session=chat, user=ada, text="what is my name")
    assert "Your name is Ada" in await answer_of(after)


async def test_the_pages_of_a_chat_whose_agent_linked_its_transcript_show_nothing_of_the_server(
    claude_env, server_files, rt
):
    """Pages read the database, never the agent's files: the chat page, its share page and the
    admin's pages of a chat whose transcript is a link to the secret key show the chat, not the key."""
    ada = await sync_to_async(make_user)()
    chat = await sync_to_async(make_session)(owner=ada)
    await say(engine=rt, session=chat, user=ada, text="my name is Ada")
    await agent_links_transcript(engine=rt, session=chat, user=ada, target=server_files.key)
    _link, token = await sync_to_async(sharing.create_share_link)(session=chat, user=ada, expires_in=None)
    owner = await sync_to_async(logged_in_client)(user=ada)
    staff = await sync_to_async(logged_in_client)(user=await sync_to_async(make_user)(is_staff=True))

    for client, url in (
        (owner, chat.get_absolute_url()),
        (Client(), f"/share/{token}/"),
        (staff, f"/admin/chat/session/{chat.pk}/change/"),
        (staff, f"/admin/chat/turn/?session__id__exact={chat.pk}"),
    ):
        page = await sync_to_async(client.get)(url)
        assert page.status_code == 200 and "my name is Ada" in page.content.decode(), url
        assert not server_files.leaked_in(page.content), url


# ---------------------------------------------------------------------------------------
# git: an agent's own folder is its own; a shared project's .git is the server's


async def test_a_chat_commits_with_git_in_its_own_folder(claude_env, secrets_around, rt):
    ada = await sync_to_async(make_user)()
    chat = await sync_to_async(make_session)(owner=ada)
    own = Path(chat.workdir)
    await say(
        engine=rt,
        session=chat,
        user=ada,
        text="run: echo mine > mine.txt && git add mine.txt && "
        "git -c user.name=Ada -c user.email=ada@example.com commit -q -m 'Mine' && git log --format=%s",
    )
    assert git(own, "log", "--format=%s") == "Mine\nYour own folder\n"


async def test_a_chat_in_a_shared_project_reads_its_git_but_cannot_change_it(
    claude_env, secrets_around, shared_repo, stub_api, rt
):
    """The server runs git in a shared project with its own powers: its .git (hooks, config,
    objects) and its tasks' worktrees are read-only for a chat working there."""
    ada = await sync_to_async(make_user)()
    chat = await sync_to_async(chats.create_session)(owner=ada, project=Project(key="team", path=shared_repo))
    before = git(shared_repo, "rev-parse", "HEAD"), (shared_repo / ".git" / "config").read_text()
    start = len(stub_api.requests)
    await say(
        engine=rt,
        session=chat,
        user=ada,
        text="run: git log --format=LOG:%s -1; "
        "{ echo '#!/bin/sh' > .git/hooks/post-checkout && echo HOOK-WRITTEN; } 2>/dev/null || echo HOOKS-READ-ONLY; "
        "git config core.fsmonitor 'touch /tmp/x' 2>/dev/null || echo CONFIG-READ-ONLY; "
        "mkdir .worktrees/9 2>/dev/null || echo WORKTREES-READ-ONLY; "
        "git -c user.name=A -c user.email=a@example.com commit -q --allow-empty -m x 2>/dev/null || echo COMMIT-REFUSED; "
        "echo edited > notes.txt && echo FILES-WRITABLE",
    )
    sent = requests_since(stub_api, start)
    for said in ("LOG:initial", "HOOKS-READ-ONLY", "CONFIG-READ-ONLY", "WORKTREES-READ-ONLY", "COMMIT-REFUSED"):
        assert said in sent, said
    assert "FILES-WRITABLE" in sent and (shared_repo / "notes.txt").read_text() == "edited\n"
    assert (git(shared_repo, "rev-parse", "HEAD"), (shared_repo / ".git" / "config").read_text()) == before
    assert not (shared_repo / ".git" / "hooks" / "post-checkout").exists()
    assert list((shared_repo / ".worktrees").iterdir()) == [shared_repo / ".worktrees" / ".gitignore"]


async def test_a_chat_cannot_make_a_shared_folder_a_repository_for_the_server(
    claude_env, secrets_around, settings, tmp_path, stub_api, rt
):
    """A shared project that is no repository yet: a chat's git init there would give the server a
    .git of the agent's to run git in. Its .git is made (empty, read-only for the chat) instead,
    and tasks there are refused until an admin makes it a repository."""
    from chat.models import ProjectAccess
    from tasks import services

    plain = tmp_path / "plain"
    plain.mkdir()
    settings.CLAUDE_PROJECTS = {"plain": plain}
    await ProjectAccess.objects.acreate(project="plain", everyone=True)
    ada = await sync_to_async(make_user)()
    chat = await sync_to_async(chats.create_session)(owner=ada, project=Project(key="plain", path=plain))
    start = len(stub_api.requests)
    await say(
        engine=rt, session=chat, user=ada, text="run: git init -q 2>/dev/null && echo INIT-OK || echo INIT-REFUSED"
    )
    assert "INIT-REFUSED" in requests_since(stub_api, start)
    assert list((plain / ".git").iterdir()) == []
    with pytest.raises(services.TaskRefused, match="is not the top of one"):
        await services.create_task(engine=rt, user=ada, prompt="x", project="plain")
