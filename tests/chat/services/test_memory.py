"""Project memory reaches the agent, with the REAL Claude Code CLI against the offline stand-in: a
CLAUDE.md written through the editor is in what the CLI sends the model (the stand-in's ``told:``
answers whether a word is in the CLI's instructions, not the person's words), the turn records which
memory files the CLI said it read, and the chat's page lists them. The CLI reads them when its
process starts and after a compaction: a warm process keeps what it read until then. A CLAUDE.md
that is a link to the server's secret key is never read by the agent."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.urls import reverse

from chat.live import fragments
from chat.models import Event, Session
from chat.services import commands
from tests.factories import logged_in_client, make_session, make_user
from tests.real_turns import answer_of, closed, say

pytestmark = [pytest.mark.django_db(transaction=True)]


def _write_memory(client, session, text: str) -> None:
    """Save ``text`` as the chat's CLAUDE.md through the editor's page, as a member does."""
    url = reverse("workspace:memory", args=["chat", str(session.pk)])
    page = client.get(url).content.decode()
    fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', page))
    answer = client.post(url, {**fields, "text": text})
    assert answer.status_code == 302, answer.content.decode()


async def test_memory_written_in_the_editor_reaches_the_agent_at_its_next_start(claude_env, rt):
    user = await sync_to_async(make_user)()
    chat = await sync_to_async(make_session)(owner=user)
    client = await sync_to_async(logged_in_client)(user=user)
    await sync_to_async(_write_memory)(client, chat, "# House rules\n\nThe code word is MEMORY-ALPHA.\n")

    turn = await say(engine=rt, session=chat, user=user, text="told: MEMORY-ALPHA")
    assert await answer_of(turn) == "I was told MEMORY-ALPHA."
    read = [e async for e in Event.objects.filter(turn=turn, name="memory_loaded")]
    assert [(e.data["path"], e.data["reason"]) for e in read] == [("CLAUDE.md", "session_start")]
    assert read[0].text == "Memory read: CLAUDE.md (46 B)"
    page = (await sync_to_async(client.get)(chat.get_absolute_url())).content.decode()
    assert "Memory: <a href=" in page and ">CLAUDE.md</a> (46 B)" in page
    assert "an edit reaches this chat when its process next starts" in page

    # Changed while the chat's process is warm: that process keeps what it read at its start...
    await sync_to_async(_write_memory)(client, chat, "The code word is MEMORY-BETA.\n")
    turn = await say(engine=rt, session=chat, user=user, text="told: MEMORY-BETA")
    assert await answer_of(turn) == "I was not told MEMORY-BETA."
    assert not [e async for e in Event.objects.filter(turn=turn, name="memory_loaded")]
    # ... and the next process reads the new version.
    await closed(rt, chat)
    turn = await say(engine=rt, session=chat, user=user, text="told: MEMORY-BETA")
    assert await answer_of(turn) == "I was told MEMORY-BETA."
    assert [e.text async for e in Event.objects.filter(turn=turn, name="memory_loaded")] == [
        "Memory read: CLAUDE.md (30 B)"
    ]


async def test_dot_claude_memory_and_imports_are_read_and_listed(claude_env, rt):
    user = await sync_to_async(make_user)()
    chat = await sync_to_async(make_session)(owner=user)
    folder = Path(chat.workdir)
    (folder / "CLAUDE.md").write_text("Style: @notes/style.md\n")
    (folder / "notes").mkdir()
    (folder / "notes" / "style.md").write_text("MEMORY-IMPORTED\n")
    (folder / ".claude").mkdir()
    (folder / ".claude" / "CLAUDE.md").write_text("MEMORY-DOT\n")
    turn = await say(engine=rt, session=chat, user=user, text="told: MEMORY-IMPORTED")
    assert await answer_of(turn) == "I was told MEMORY-IMPORTED."
    turn_dot = await say(engine=rt, session=chat, user=user, text="told: MEMORY-DOT")
    assert await answer_of(turn_dot) == "I was told MEMORY-DOT."
    read = {e.data["path"]: e.data async for e in Event.objects.filter(turn=turn, name="memory_loaded")}
    assert set(read) == {"CLAUDE.md", ".claude/CLAUDE.md", "notes/style.md"}
    assert read["notes/style.md"]["reason"] == "include" and read["notes/style.md"]["parent"] == "CLAUDE.md"


async def test_a_claude_md_linking_to_the_servers_secret_key_is_never_read_by_the_agent(claude_env, rt, tmp_path):
    secret = tmp_path / "data" / "secret-key.txt"
    secret.parent.mkdir(parents=True, exist_ok=True)
    secret.write_text("SERVER-SECRET-KEY-42\n")
    user = await sync_to_async(make_user)()
    chat = await sync_to_async(make_session)(owner=user)
    folder = Path(chat.workdir)
    (folder / "CLAUDE.md").symlink_to(secret)
    turn = await say(engine=rt, session=chat, user=user, text="told: SERVER-SECRET-KEY-42")
    assert await answer_of(turn) == "I was not told SERVER-SECRET-KEY-42."
    # The page says nothing of it either (the editor refuses the link, tests/workspace/test_memory.py).
    events = [e async for e in Event.objects.filter(turn=turn)]
    assert all("SERVER-SECRET-KEY-42" not in (e.text + str(e.data)) for e in events if e.kind != Event.Kind.TEXT)


async def test_a_compaction_rereads_memory_and_the_page_says_so(claude_env, rt):
    user = await sync_to_async(make_user)()
    chat = await sync_to_async(make_session)(owner=user)
    folder = Path(chat.workdir)
    (folder / "CLAUDE.md").write_text("MEMORY-OLD\n")
    await say(engine=rt, session=chat, user=user, text="told: MEMORY-OLD")
    (folder / "CLAUDE.md").write_text("MEMORY-NEW\n")
    done = await commands.submit(engine=rt, session_id=chat.id, user=user, text="/compact", chosen=True)
    await rt.turns.idle()
    assert done.turn is not None
    turn = await say(engine=rt, session=chat, user=user, text="told: MEMORY-NEW")
    assert await answer_of(turn) == "I was told MEMORY-NEW."
    reread = [e.data async for e in Event.objects.filter(turn__session=chat, name="memory_loaded").order_by("id")]
    assert [data["reason"] for data in reread] == ["session_start", "compact"]
    kept = (await Session.objects.aget(pk=chat.pk)).memory_read
    assert kept["compacted"] and [f["path"] for f in kept["files"]] == ["CLAUDE.md"]
    html = await sync_to_async(fragments.memory_note)(await Session.objects.aget(pk=chat.pk))
    assert "read when Claude Code compacted the conversation" in html and "CLAUDE.md</a> (11 B)" in html
