"""Turns on warm CLI processes, with the REAL Claude Code CLI against the offline stand-in: a chat
keeps its process between turns, Stop interrupts it without ending it, another model is taken by the
same process, and eviction, a crash or a restart cost a cold start but never the chat's memory. File
edits across chats share a limit (on the stand-in process of tests/fake_session.py: the order of the
waits is the app's, not the CLI's)."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async

from chat.models import Event, Session, Turn
from chat.services import chats, permissions, turns
from project import runtime as composition
from tests.factories import make_session, make_user
from tests.processes import running

pytestmark = [pytest.mark.django_db(transaction=True)]


async def send(rt, session: Session, user, text: str) -> Turn:
    return await turns.submit_message(engine=rt, session_id=session.id, user=user, text=text)


async def settled(rt, turn: Turn) -> Turn:
    await rt.turns.idle()
    return await Turn.objects.aget(pk=turn.pk)


async def answer(turn: Turn) -> str:
    return "\n".join([e.text async for e in Event.objects.filter(turn=turn, kind=Event.Kind.TEXT)])


async def new_chat():
    user = await sync_to_async(make_user)()
    return user, await sync_to_async(make_session)(owner=user)


async def introduce(rt, chat: Session, user, name: str) -> Turn:
    turn = await settled(rt, await send(rt, chat, user, f"My name is {name}"))
    assert turn.status == Turn.Status.DONE, turn.error
    return turn


async def remembers(rt, chat: Session, user, name: str) -> Turn:
    turn = await settled(rt, await send(rt, chat, user, "What is my name?"))
    assert turn.status == Turn.Status.DONE, turn.error
    assert f"Your name is {name}" in await answer(turn)
    return turn


async def gone(pid: int, within: float = 10.0) -> bool:
    for _ in range(int(within / 0.05)):
        if not running(pid):
            return True
        await asyncio.sleep(0.05)
    return False


@pytest.mark.usefixtures("rt")
async def test_a_chat_keeps_its_process_between_turns(claude_env, rt):
    user, chat = await new_chat()
    first = await introduce(rt, chat, user, "Ada")
    second = await remembers(rt, chat, user, "Ada")
    assert first.pid and second.pid == first.pid and running(first.pid)
    assert rt.node.warm.started == 1


@pytest.mark.usefixtures("rt")
async def test_stop_interrupts_the_turn_and_the_process_and_its_memory_stay(claude_env, rt):
    user, chat = await new_chat()
    first = await introduce(rt, chat, user, "Ada")
    slow = await send(rt, chat, user, "slow 30")
    while "word3" not in await answer(slow):
        await asyncio.sleep(0.05)
    assert await turns.stop_turn(engine=rt, session_id=chat.id)
    slow = await settled(rt, slow)
    assert slow.status == Turn.Status.STOPPED
    after = await remembers(rt, chat, user, "Ada")
    assert after.pid == first.pid and running(first.pid)
    assert rt.node.warm.started == 1


@pytest.mark.parametrize("rt", [{"max_warm": 2}], indirect=True)
async def test_at_most_max_warm_processes_stay_and_an_evicted_chat_still_remembers(claude_env, rt):
    talks = [await new_chat() for _ in range(3)]
    firsts = [
        await introduce(rt, chat, user, name) for (user, chat), name in zip(talks, ("Ada", "Bob", "Cy"), strict=True)
    ]
    # The least recently used chat's process was closed; the other two stay.
    assert await gone(firsts[0].pid)
    assert [running(t.pid) for t in firsts[1:]] == [True, True]
    assert len(rt.node.warm) == 2

    user, chat = talks[0]
    again = await remembers(rt, chat, user, "Ada")  # a cold start that resumes the transcript
    assert again.pid != firsts[0].pid
    assert rt.node.warm.started == 4
    assert len(rt.node.warm) == 2 and await gone(firsts[1].pid)


async def test_a_warm_process_takes_another_model_and_permission_mode_and_keeps_its_memory(
    claude_env, rt, stub_api, settings
):
    settings.CLAUDE_MODELS = ["claude-stand-in-small", "claude-stand-in-large"]
    user, chat = await new_chat()
    first = await introduce(rt, chat, user, "Ada")
    chat = await sync_to_async(chats.set_model)(session=chat, model="claude-stand-in-large")
    asked = len(stub_api.requests)
    which = await settled(rt, await send(rt, chat, user, "which model"))
    assert which.status == Turn.Status.DONE, which.error
    assert "from the model claude-stand-in-large" in await answer(which)
    assert {r["body"].get("model") for r in stub_api.requests[asked:]} >= {"claude-stand-in-large"}
    # A write in the default mode would wait for a person; in acceptEdits it runs unasked.
    settings.CLAUDE_PERMISSION_MODE = "acceptEdits"
    wrote = await settled(rt, await send(rt, chat, user, "write mode.txt: switched"))
    assert wrote.status == Turn.Status.DONE, wrote.error
    assert (Path(chat.workdir) / "mode.txt").read_text() == "switched\n"
    after = await remembers(rt, chat, user, "Ada")
    assert which.pid == wrote.pid == after.pid == first.pid and running(first.pid)
    assert rt.node.warm.started == 1


@pytest.mark.usefixtures("rt")
async def test_a_warm_process_that_died_between_turns_is_replaced(claude_env, rt):
    user, chat = await new_chat()
    first = await introduce(rt, chat, user, "Ada")
    os.kill(first.pid, signal.SIGKILL)
    assert await gone(first.pid)
    again = await remembers(rt, chat, user, "Ada")
    assert again.pid != first.pid and again.error == ""


async def test_a_restart_costs_a_cold_start_but_not_the_memory_and_leaves_no_process(claude_env):
    before = await composition.start(composition.build(), recover_first=False)
    try:
        user, chat = await new_chat()
        first = await introduce(before, chat, user, "Ada")
    finally:
        await composition.stop(before)
    assert await gone(first.pid)

    after = await composition.start(composition.build(), recover_first=True)
    try:
        again = await remembers(after, chat, user, "Ada")
        assert again.pid != first.pid
    finally:
        await composition.stop(after)
    assert await gone(again.pid)


async def test_deleting_a_chat_closes_its_warm_process(fake_cli, rt):
    user, chat = await new_chat()
    await introduce(rt, chat, user, "Ada")
    [process] = fake_cli.alive
    await sync_to_async(chats.delete_session)(session=chat, engine=rt)
    await rt.node.warm.idle()
    assert not process.alive and len(rt.node.warm) == 0


# -- the limit on parallel file edits (CLAUDE_MAX_FILE_OPERATIONS) ----------------------------


@pytest.fixture
def accept_edits(settings):
    settings.CLAUDE_PERMISSION_MODE = "acceptEdits"
    settings.CLAUDE_MAX_FILE_OPERATIONS = 1


async def notices(turn: Turn) -> list[str]:
    return [e.text async for e in Event.objects.filter(turn=turn, kind=Event.Kind.NOTICE, name="file_slot")]


async def until(check, within: float = 30.0) -> None:
    for _ in range(int(within / 0.05)):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("never happened")


@pytest.mark.parametrize("rt", [{"max_file_operations": 1}], indirect=True)
@pytest.mark.usefixtures("accept_edits")
async def test_edits_wait_for_a_file_slot_and_go_on_in_order_when_it_is_free(fake_cli, rt):
    # The one slot is taken, as by a long edit elsewhere: both chats' writes wait, and say so.
    await rt.node.file_slots.acquire(owner="elsewhere")
    (ua, a), (ub, b) = await new_chat(), await new_chat()
    ta = await send(rt, a, ua, "write a.txt: from a")
    await until(lambda: notices(ta))
    tb = await send(rt, b, ub, "write b.txt: from b")
    await until(lambda: notices(tb))
    assert "Waiting for a file slot" in (await notices(ta))[0]
    assert (await Turn.objects.aget(pk=ta.pk)).status == Turn.Status.RUNNING
    assert not (Path(a.workdir) / "a.txt").exists() and not (Path(b.workdir) / "b.txt").exists()
    assert rt.node.file_slots.status().waiting == 2

    rt.node.file_slots.release(owner="elsewhere")
    ta, tb = await settled(rt, ta), await settled(rt, tb)
    assert (ta.status, tb.status) == (Turn.Status.DONE, Turn.Status.DONE), (ta.error, tb.error)
    assert (Path(a.workdir) / "a.txt").read_text() == "from a\n"
    assert (Path(b.workdir) / "b.txt").read_text() == "from b\n"
    # The first to wait went first.
    assert (Path(a.workdir) / "a.txt").stat().st_mtime_ns <= (Path(b.workdir) / "b.txt").stat().st_mtime_ns
    assert rt.node.file_slots.status().active == 0


@pytest.mark.parametrize("rt", [{"max_file_operations": 1}], indirect=True)
@pytest.mark.usefixtures("accept_edits")
async def test_stop_while_waiting_for_a_file_slot_gives_nothing_away_and_blocks_nobody(fake_cli, rt):
    await rt.node.file_slots.acquire(owner="elsewhere")
    user, chat = await new_chat()
    waiting = await send(rt, chat, user, "write a.txt: never")
    await until(lambda: notices(waiting))
    assert await turns.stop_turn(engine=rt, session_id=chat.id)
    waiting = await settled(rt, waiting)
    assert waiting.status == Turn.Status.STOPPED
    assert rt.node.file_slots.status().waiting == 0
    rt.node.file_slots.release(owner="elsewhere")
    assert rt.node.file_slots.status().active == 0
    assert not (Path(chat.workdir) / "a.txt").exists()

    # The slot is free for the next edit, in this chat and in another.
    again = await settled(rt, await send(rt, chat, user, "write a.txt: after the stop"))
    assert again.status == Turn.Status.DONE, again.error
    events = [(e.kind, e.name, e.text[:200], e.data) async for e in Event.objects.filter(turn=again)]
    assert (Path(chat.workdir) / "a.txt").exists(), events
    assert (Path(chat.workdir) / "a.txt").read_text() == "after the stop\n"
    other_user, other = await new_chat()
    done = await settled(rt, await send(rt, other, other_user, "write b.txt: fine"))
    assert done.status == Turn.Status.DONE, done.error
    assert rt.node.file_slots.status().active == 0


@pytest.mark.parametrize("rt", [{"max_file_operations": 1}], indirect=True)
async def test_a_write_waiting_for_a_persons_answer_holds_no_file_slot(fake_cli, rt, settings):
    settings.CLAUDE_MAX_FILE_OPERATIONS = 1
    user, chat = await new_chat()
    turn = await send(rt, chat, user, "write notes.txt: hello")

    async def prompt_open() -> bool:
        return await Event.objects.filter(turn=turn, kind=Event.Kind.PERMISSION, data__status="pending").aexists()

    await until(prompt_open)
    assert rt.node.file_slots.status().active == 0
    prompt = await Event.objects.aget(turn=turn, kind=Event.Kind.PERMISSION)
    await permissions.answer(event_id=prompt.pk, answer=permissions.Answer.ALLOW, user=user)
    turn = await settled(rt, turn)
    assert turn.status == Turn.Status.DONE, turn.error
    assert (Path(chat.workdir) / "notes.txt").read_text() == "hello\n"
    assert rt.node.file_slots.status().active == 0


@pytest.mark.usefixtures("rt")
async def test_each_turn_stores_its_own_cost_not_the_sessions_running_total(claude_env, rt):
    user, chat = await new_chat()
    done = [await settled(rt, await send(rt, chat, user, "echo: same words")) for _ in range(3)]
    totals = [t.cli_total_cost_usd for t in done]
    # The CLI reports the session's running total; each turn keeps the difference.
    assert totals[0] < totals[1] < totals[2]
    assert [t.cost_usd for t in done] == pytest.approx([totals[0], totals[1] - totals[0], totals[2] - totals[1]])
    assert all(t.cost_usd > 0 for t in done)
    # After a restart of the process the totals go on from the transcript: still one turn's cost.
    rt.node.warm.drop(str(chat.id))
    await rt.node.warm.idle()
    fourth = await settled(rt, await send(rt, chat, user, "echo: same words"))
    assert fourth.cost_usd == pytest.approx(fourth.cli_total_cost_usd - totals[2])
    assert 0 < fourth.cost_usd < totals[2]
