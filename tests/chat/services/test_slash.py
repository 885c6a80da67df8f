"""The command menu's catalogue and parsing, on files in a temporary folder (no CLI needed), and the
refusals of rewind, fork and "Run this plan" on the fake CLI's sessions (orderings, not the CLI's)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async

from chat.models import PLAN_MODE, Event, Session, Turn
from chat.services import history, plans, slash, turns
from tests.factories import make_session, make_user


def chat_in(folder: Path) -> Session:
    return Session(workdir=str(folder))


def test_a_command_is_a_name_and_arguments_and_only_an_offered_one_is_chosen(tmp_path):
    assert slash.parse("/compact keep the names") == ("compact", "keep the names")
    assert slash.parse("/cost") == ("cost", "")
    assert slash.parse("/compact\nkeep it short") == ("compact", "keep it short")
    assert slash.parse("/../etc/passwd") is None and slash.parse("/-rf") is None and slash.parse("cost") is None
    chat = chat_in(tmp_path)
    compact, arguments = slash.chosen("/compact keep names", chat) or (None, "")
    assert compact is not None and compact.runs == slash.Runs.CLI and arguments == "keep names"
    assert slash.chosen("/cost now", chat) is None  # takes no arguments: text
    assert slash.chosen("/nonesuch", chat) is None


def test_project_commands_are_read_without_following_links_and_fill_in_their_arguments(tmp_path):
    folder = tmp_path / ".claude" / "commands"
    folder.mkdir(parents=True)
    (folder / "review.md").write_text("---\ndescription: 'Review a file'\n---\nReview $ARGUMENTS closely.\n")
    (folder / "plain.md").write_text("Say hello.\n")
    (folder / "compact.md").write_text("A project's own compact is not the built-in.\n")
    (tmp_path / "secret.md").write_text("secret\n")
    os.symlink(tmp_path / "secret.md", folder / "linked.md")
    os.mkfifo(folder / "fifo.md")
    (folder / "notes.txt").write_text("not a command\n")
    chat = chat_in(tmp_path)
    offered = {command.name: command for command in slash.offered(chat)}
    assert offered["review"].hint == "Review a file" and offered["plain"].hint == "A command of this project"
    assert offered["compact"].runs == slash.Runs.CLI
    assert not {"linked", "fifo", "notes"} & offered.keys()
    assert slash.project_prompt(chat, "review", "app.py") == "Review app.py closely."
    assert slash.project_prompt(chat, "plain", "loudly") == "Say hello.\n\nARGUMENTS: loudly"
    with pytest.raises(slash.CommandFailed, match="could not be read"):
        slash.project_prompt(chat, "linked", "")
    with pytest.raises(slash.CommandFailed, match="no longer in"):
        slash.project_prompt(chat, "gone", "")


@pytest.mark.django_db(transaction=True)
async def test_rewind_fork_and_a_plan_wait_while_a_message_runs(fake_cli, rt):
    user = await sync_to_async(make_user)()
    chat = await sync_to_async(make_session)(owner=user)
    first = await turns.submit_message(engine=rt, session_id=chat.id, user=user, text="my name is Ada")
    await rt.turns.idle()
    await Turn.objects.filter(pk=first.pk).aupdate(cli_uuid="0b6f4b52-3c1e-4d7a-9f51-2a1d6c8e9b30")
    plan = await Event.objects.acreate(
        turn_id=first.pk, kind=Event.Kind.TOOL_USE, name="ExitPlanMode", data={"id": "toolu_1", "input": {"plan": "x"}}
    )
    await Session.objects.filter(pk=chat.pk).aupdate(permission_mode=PLAN_MODE)
    slow = await turns.submit_message(engine=rt, session_id=chat.id, user=user, text="slow 30")
    while (await Turn.objects.aget(pk=slow.pk)).status != Turn.Status.RUNNING:
        await asyncio.sleep(0.02)
    with pytest.raises(history.HistoryRefused, match="running or waiting"):
        await history.rewind(engine=rt, session_id=chat.id, user=user, turn_id=first.pk)
    with pytest.raises(plans.PlanRefused, match="went on after this plan"):
        await plans.run_plan(engine=rt, session_id=chat.id, user=user, event_id=plan.pk)
    assert await turns.stop_turn(engine=rt, session_id=chat.id)
    await rt.turns.idle()
    # A stopped message does not count as the chat going on: the plan can still run.
    went = await plans.run_plan(engine=rt, session_id=chat.id, user=user, event_id=plan.pk)
    await rt.turns.idle()
    assert (await Turn.objects.aget(pk=went.pk)).status == Turn.Status.DONE
    # Someone else's chat is not found.
    other = await sync_to_async(make_user)()
    with pytest.raises(Session.DoesNotExist):
        await history.fork(session_id=chat.id, user=other, turn_id=first.pk)
