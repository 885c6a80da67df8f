"""Slash commands chosen from the message box's menu, with the REAL Claude Code CLI against the
offline stand-in: /compact compacts and says so, /cost shows the CLI's table, a project's own
command (.claude/commands) runs, /clear starts a chat from a summary; a typed "/" stays text."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async

from chat.models import Event, Session, Turn
from chat.services import commands, slash
from tests.factories import make_session, make_user

pytestmark = [pytest.mark.django_db(transaction=True)]


async def run(rt, chat: Session, user, text: str, *, chosen: bool = True) -> commands.Done:
    done = await commands.submit(engine=rt, session_id=chat.id, user=user, text=text, chosen=chosen)
    await rt.turns.idle()
    if done.turn is not None:
        turn = await Turn.objects.aget(pk=done.turn.pk)
        assert turn.status == Turn.Status.DONE, turn.error
    return done


async def shown(turn: Turn | None) -> list[str]:
    assert turn is not None
    return [e.text async for e in Event.objects.filter(turn=turn).exclude(kind=Event.Kind.TOOL_USE)]


async def a_chat():
    user = await sync_to_async(make_user)()
    return user, await sync_to_async(make_session)(owner=user)


async def test_compact_says_what_it_did_and_the_chat_still_knows_the_name(claude_env, rt):
    user, chat = await a_chat()
    await run(rt, chat, user, "my name is Ada", chosen=False)
    done = await run(rt, chat, user, "/compact keep names")
    assert done.turn is not None and done.turn.command == "compact"
    notice = await Event.objects.aget(turn=done.turn, name="compacted")
    assert notice.text.startswith("Compacted: ") and notice.text.endswith(" tokens.")
    chat = await Session.objects.aget(pk=chat.pk)
    assert chat.context_tokens == notice.data["post_tokens"]
    after = await run(rt, chat, user, "what is my name", chosen=False)
    assert "Your name is Ada." in await shown(after.turn)


async def test_cost_shows_the_clis_table_and_a_typed_command_stays_text(claude_env, rt, stub_api):
    user, chat = await a_chat()
    await run(rt, chat, user, "my name is Ada", chosen=False)
    cost = await run(rt, chat, user, "/cost")
    (table,) = [e async for e in Event.objects.filter(turn=cost.turn, kind=Event.Kind.TEXT)]
    assert "Estimated cost:" in table.text and table.data == {"plain": True}
    # Typed, not chosen: the model reads it as text, and nothing is compacted.
    typed = await run(rt, chat, user, "/compact", chosen=False)
    assert typed.turn is not None and not typed.turn.command
    assert "You said: /compact" in "".join(await shown(typed.turn))
    assert not await Event.objects.filter(turn__session=chat, name="compacted").aexists()


async def test_a_project_command_runs_and_a_link_in_its_folder_is_not_offered(claude_env, rt, tmp_path):
    user, chat = await a_chat()
    folder = Path(chat.workdir) / ".claude" / "commands"
    folder.mkdir(parents=True)
    (folder / "greet.md").write_text("---\ndescription: Greets someone\n---\necho: Hello $ARGUMENTS, from greet\n")
    secret = tmp_path / "secret.md"
    secret.write_text("echo: the server's secret\n")
    os.symlink(secret, folder / "leak.md")
    (folder / "bad name.md").write_text("echo: not offered\n")
    offered = {c.name: c for c in await sync_to_async(slash.offered)(chat)}
    assert offered["greet"].hint == "Greets someone" and offered["greet"].runs == slash.Runs.PROJECT
    assert "leak" not in offered and "bad name" not in offered
    done = await run(rt, chat, user, "/greet Bob")
    assert done.turn is not None and done.turn.command == "greet" and done.turn.prompt == "/greet Bob"
    assert "Hello Bob, from greet" in await shown(done.turn)
    # Chosen, but not offered (the link): sent as text.
    leak = await run(rt, chat, user, "/leak")
    assert leak.turn is not None and not leak.turn.command
    assert "the server's secret" not in "".join(await shown(leak.turn))


async def test_clear_starts_a_new_chat_from_a_summary_and_model_says_what_it_uses(claude_env, rt, settings):
    user, chat = await a_chat()
    await run(rt, chat, user, "my name is Ada", chosen=False)
    done = await run(rt, chat, user, "/clear")
    assert done.turn is not None and done.turn.session_id != chat.id and done.url.endswith(f"/{done.turn.session_id}/")
    first = await Turn.objects.select_related("session").aget(pk=done.turn.pk)
    assert "my name is Ada" in first.prompt and first.status == Turn.Status.DONE
    assert first.session.title == "my name is Ada (continued)"
    follow = await run(rt, await Session.objects.aget(pk=first.session_id), user, "what is my name", chosen=False)
    assert "Your name is Ada." in await shown(follow.turn)
    assert await Turn.objects.filter(session=chat).acount() == 1  # the old chat stays as it was

    settings.CLAUDE_MODELS = ["claude-stand-in-small", "claude-stand-in-large"]
    said = await run(rt, chat, user, "/model")
    assert said.turn is None and "Offered: claude-stand-in-small, claude-stand-in-large" in said.said
    switched = await run(rt, chat, user, "/model claude-stand-in-large")
    assert switched.said == "The next messages use claude-stand-in-large."
    assert (await Session.objects.aget(pk=chat.pk)).model == "claude-stand-in-large"
