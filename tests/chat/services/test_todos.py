"""The agent's todo list, with the REAL Claude Code CLI against the offline stand-in: a chat's agent
has the CLI's todo tools, and the panel shows what it put on the list and what it marked done."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from chat.live import fragments
from chat.models import Session
from chat.services import todos
from tests.factories import make_session, make_user
from tests.real_turns import say

pytestmark = [pytest.mark.django_db(transaction=True)]


async def test_the_todo_panel_shows_the_agents_list_as_it_changes(claude_env, rt):
    user = await sync_to_async(make_user)()
    chat = await sync_to_async(make_session)(owner=user)
    await say(engine=rt, session=chat, user=user, text="todo: write the notes; check the notes")
    listed = await sync_to_async(todos.todos_of)(chat)
    assert [(t.number, t.subject, t.status) for t in listed] == [
        ("1", "write the notes", "completed"),
        ("2", "check the notes", "pending"),
    ]
    kept = await Session.objects.aget(pk=chat.pk)
    assert kept.todos == [
        {"number": "1", "subject": "write the notes", "status": "completed", "active_form": ""},
        {"number": "2", "subject": "check the notes", "status": "pending", "active_form": ""},
    ]
    html = await sync_to_async(fragments.todo_panel)(chat, listed)
    assert "Todo list" in html and "☑</span> write the notes" in html and "☐</span> check the notes" in html
