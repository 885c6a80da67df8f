"""Chat turns end to end: with the REAL Claude Code CLI against the offline stand-in where the CLI is
what is shown (memory, its errors, its transcript), on the stand-in process (tests/fake_session.py)
where only the order, the limits and the statuses are (marked by their fixtures, see conftest)."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import socket
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from chat.models import Event, Session, Turn
from chat.services import recovery, turns
from tests.conftest import CLAUDE
from tests.factories import make_session, make_user
from tests.processes import spawn_named

pytestmark = [pytest.mark.django_db(transaction=True)]


async def send(rt, session: Session, user, text: str) -> Turn:
    return await turns.submit_message(engine=rt, session_id=session.id, user=user, text=text)


async def answer(turn: Turn) -> str:
    texts = [e.text async for e in Event.objects.filter(turn=turn, kind=Event.Kind.TEXT)]
    return "\n".join(texts)


async def settled(rt, turn: Turn) -> Turn:
    await rt.idle()
    return await Turn.objects.aget(pk=turn.pk)


async def test_second_turn_remembers_the_first_and_a_new_chat_does_not(claude_env, rt):
    user = await sync_to_async(make_user)()
    chat = await sync_to_async(make_session)(owner=user)
    first = await settled(rt, await send(rt, chat, user, "My name is Ada"))
    assert first.status == Turn.Status.DONE, first.error
    assert "Nice to meet you, Ada" in await answer(first)
    assert claude_env.transcript(chat).exists()
    assert (await Session.objects.aget(pk=chat.id)).cli_created

    second = await settled(rt, await send(rt, chat, user, "What is my name?"))
    assert second.status == Turn.Status.DONE, second.error
    assert "Your name is Ada" in await answer(second)
    assert second.input_tokens > 0 and second.output_tokens > 0 and second.cost_usd > 0

    other = await sync_to_async(make_session)(owner=user)
    fresh = await settled(rt, await send(rt, other, user, "What is my name?"))
    assert "I don't know your name" in await answer(fresh)


def conversation_forks(transcript) -> list[str]:
    """Parent uuids that more than one conversation entry hangs from (a forked transcript)."""
    children: dict[str, int] = {}
    for line in transcript.read_text().splitlines():
        entry = json.loads(line)
        if entry.get("type") in ("user", "assistant") and entry.get("parentUuid"):
            children[entry["parentUuid"]] = children.get(entry["parentUuid"], 0) + 1
    return [parent for parent, count in children.items() if count > 1]


async def test_concurrent_sends_run_one_at_a_time_in_order_without_forking(claude_env, rt):
    user = await sync_to_async(make_user)()
    chat = await sync_to_async(make_session)(owner=user)
    sent = await asyncio.gather(*(send(rt, chat, user, f"echo: message {i}") for i in range(4)))
    statuses = {t.status for t in sent}
    assert statuses == {Turn.Status.QUEUED}
    await rt.idle()
    done = [t async for t in Turn.objects.filter(session=chat).order_by("id")]
    assert [t.status for t in done] == [Turn.Status.DONE] * 4
    for earlier, later in itertools.pairwise(done):
        assert earlier.finished_at <= later.started_at
    assert [await answer(t) for t in done] == [t.prompt.removeprefix("echo: ") for t in done]
    assert conversation_forks(claude_env.transcript(chat)) == []


def cli_processes_in(workdir) -> int:
    """CLI processes the app started in ``workdir`` or a folder under it (inside their sandboxes too).

    A CLI process is one running the CLI's binary whose parent does not (the CLI's own helpers,
    shells and tools, run other programs)."""
    binary = os.path.realpath(CLAUDE)

    def exe(pid: str) -> str:
        try:
            return os.readlink(f"/proc/{pid}/exe")
        except OSError:
            return ""

    count = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or exe(proc.name) != binary:
            continue
        try:
            parent = (proc / "stat").read_text().rsplit(")", 1)[1].split()[1]
            if exe(parent) != binary and (os.readlink(proc / "cwd") + "/").startswith(f"{workdir}/"):
                count += 1
        except (OSError, IndexError):
            continue
    return count


@pytest.mark.parametrize("rt", [{"max_processes": 2, "max_warm": 0}], indirect=True)
async def test_the_process_limit_holds_across_sessions(fake_cli, rt):
    """With no process kept warm, at most CLAUDE_MAX_CONCURRENT CLI processes exist at once, those
    still ending included (a stand-in's close takes a moment, as the CLI's does)."""
    user = await sync_to_async(make_user)()
    chats = [await sync_to_async(make_session)(owner=user) for _ in range(4)]
    processes = rt.node.processes
    peak_slots = 0
    sent = [await send(rt, chat, user, "slow 0.3") for chat in chats]

    async def watch() -> None:
        nonlocal peak_slots
        while True:
            peak_slots = max(peak_slots, processes.active)
            await asyncio.sleep(0.01)

    watcher = asyncio.create_task(watch())
    await rt.idle()
    watcher.cancel()
    assert peak_slots == 2
    assert fake_cli.peak == 2 and len(fake_cli.started) == 4 and fake_cli.alive == []
    assert processes.status().active == 0 and processes.status().waiting == 0
    finished = [await Turn.objects.aget(pk=t.pk) for t in sent]
    assert all(t.status == Turn.Status.DONE for t in finished)


async def test_already_in_use_is_retried_with_resume(claude_env, rt):
    """The transcript exists but the app did not know (e.g. a crash after the CLI wrote it)."""
    user = await sync_to_async(make_user)()
    chat = await sync_to_async(make_session)(owner=user)
    await settled(rt, await send(rt, chat, user, "My name is Ada"))
    await Session.objects.filter(pk=chat.id).aupdate(cli_created=False)
    second = await settled(rt, await send(rt, chat, user, "What is my name?"))
    assert second.status == Turn.Status.DONE, second.error
    assert "Your name is Ada" in await answer(second)
    assert second.error == ""


async def test_a_timeout_stops_the_turn_keeps_the_partial_answer_and_the_chat_goes_on(fake_cli, settings, rt):
    settings.CLAUDE_TURN_TIMEOUT = 0.5
    user = await sync_to_async(make_user)()
    chat = await sync_to_async(make_session)(owner=user)
    turn = await settled(rt, await send(rt, chat, user, "slow 30"))
    assert turn.status == Turn.Status.TIMEOUT
    assert "No answer within 0.5 seconds" in turn.error and "CLAUDE_TURN_TIMEOUT" in turn.error
    assert "Slow answer: word1" in await answer(turn)
    assert not await Event.objects.filter(turn=turn, complete=False).aexists()
    assert (await Session.objects.aget(pk=chat.id)).status == Session.Status.IDLE
    settings.CLAUDE_TURN_TIMEOUT = 60
    after = await settled(rt, await send(rt, chat, user, "echo: after the timeout"))
    assert after.status == Turn.Status.DONE and await answer(after) == "after the timeout"
    # The interrupted process was kept warm for the chat's next turn.
    assert len(fake_cli.started) == 1 and fake_cli.started[0].turns == 2


async def test_stop_ends_the_turn_and_the_next_message_still_works(fake_cli, rt):
    user = await sync_to_async(make_user)()
    chat = await sync_to_async(make_session)(owner=user)
    turn = await send(rt, chat, user, "slow 30")
    queued = await send(rt, chat, user, "echo: after the stop")
    while "word3" not in "".join([e.text async for e in Event.objects.filter(turn=turn)]):
        await asyncio.sleep(0.05)
    assert await turns.stop_turn(engine=rt, session_id=chat.id)
    await rt.idle()
    turn = await Turn.objects.aget(pk=turn.pk)
    assert turn.status == Turn.Status.STOPPED
    assert "word3" in await answer(turn)
    # What it used is counted though the CLI's result of an interrupted turn reports no tokens.
    assert turn.input_tokens > 0 and turn.cli_total_cost_usd is not None
    queued = await Turn.objects.aget(pk=queued.pk)
    assert queued.status == Turn.Status.DONE, queued.error
    assert await answer(queued) == "after the stop"


async def test_missing_cli_says_how_to_install_it_and_keeps_the_message(claude_env, settings, tmp_path, rt):
    settings.CLAUDE_CLI = str(tmp_path / "no-such-claude")
    user = await sync_to_async(make_user)()
    chat = await sync_to_async(make_session)(owner=user)
    turn = await settled(rt, await send(rt, chat, user, "hello"))
    assert turn.status == Turn.Status.ERROR
    assert "Claude Code CLI was not found" in turn.error and "CLAUDE_CLI" in turn.error
    assert turn.prompt == "hello"


async def test_not_logged_in_says_how_to_log_in(claude_env, monkeypatch, rt):
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    user = await sync_to_async(make_user)()
    chat = await sync_to_async(make_session)(owner=user)
    turn = await settled(rt, await send(rt, chat, user, "hello"))
    assert turn.status == Turn.Status.ERROR
    assert "not logged in" in turn.error and "ANTHROPIC_API_KEY" in turn.error


async def test_missing_transcript_on_resume_is_explained(claude_env, rt):
    user = await sync_to_async(make_user)()
    chat = await sync_to_async(make_session)(owner=user)
    await settled(rt, await send(rt, chat, user, "My name is Ada"))
    # No warm process: the next turn starts one, which resumes from the transcript.
    rt.node.warm.drop(str(chat.id))
    await rt.node.warm.idle()
    claude_env.transcript(chat).unlink()
    turn = await settled(rt, await send(rt, chat, user, "What is my name?"))
    assert turn.status == Turn.Status.ERROR
    assert "transcript of this chat is missing" in turn.error


async def test_archived_chat_refuses_messages(fake_cli, rt):
    user = await sync_to_async(make_user)()
    chat = await sync_to_async(make_session)(owner=user)
    await Session.objects.filter(pk=chat.id).aupdate(archived_at=timezone.now())
    with pytest.raises(turns.TurnRefused, match="archived"):
        await send(rt, chat, user, "hello")


@pytest.mark.django_db
def test_restart_marks_unfinished_turns_interrupted_and_ends_their_processes(tmp_path):
    user = make_user()
    chat = make_session(owner=user, workdir=tmp_path)
    # The recovery only kills what looks like the CLI; name the orphan so via its argv.
    orphan = spawn_named("claude-orphan")
    running = Turn.objects.create(session=chat, prompt="a", status=Turn.Status.RUNNING, pid=orphan.pid)
    Event.objects.create(turn=running, kind=Event.Kind.TEXT, text="partial", complete=False)
    queued = Turn.objects.create(session=chat, prompt="b", status=Turn.Status.QUEUED)
    Session.objects.filter(pk=chat.pk).update(status=Session.Status.RUNNING)

    assert recovery.recover_interrupted() == 2
    assert orphan.wait(5) != 0
    for turn in (running, queued):
        turn.refresh_from_db()
        assert turn.status == Turn.Status.INTERRUPTED
        assert "Send the message again" in turn.error
    assert Event.objects.get(turn=running).text == "partial"
    chat.refresh_from_db()
    assert chat.status == Session.Status.IDLE


def closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("retries", ["default", "1"])
async def test_an_api_that_cannot_be_reached_is_said_once_with_its_address(
    claude_env, settings, monkeypatch, retries, rt
):
    """The real CLI pointed at a closed port: one notice while it retries, then where it could not connect
    (whether the CLI gives up by itself or the turn's time runs out first), never "ask for less"."""
    url = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("ANTHROPIC_BASE_URL", url)
    if retries != "default":
        monkeypatch.setenv("CLAUDE_CODE_MAX_RETRIES", retries)
    settings.CLAUDE_TURN_TIMEOUT = 6
    user = await sync_to_async(make_user)()
    chat = await sync_to_async(make_session)(owner=user)
    turn = await settled(rt, await send(rt, chat, user, "hello"))
    assert turn.error.startswith(f"Cannot reach the API at {url} ("), turn.error
    assert "ANTHROPIC_BASE_URL" in turn.error and "Ask for less" not in turn.error
    if retries == "default":
        assert turn.status == Turn.Status.TIMEOUT and "no connection within 6 seconds" in turn.error
    else:
        # The agent's CLI only sees the sandbox's proxy end its connection; the proxy says why.
        assert (
            turn.status == Turn.Status.ERROR
            and "The server itself could not connect to it: Connection refused" in turn.error
        )
    notices = [e.text async for e in Event.objects.filter(turn=turn, kind=Event.Kind.NOTICE)]
    assert len(notices) == 1 and notices[0].startswith(f"Cannot reach the API at {url}; Claude Code retries up to "), (
        notices
    )
