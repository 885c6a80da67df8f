"""A turn's content on the chat page, on a reload and on a share page: Markdown answers and tool cards."""

from __future__ import annotations

import re

import pytest
from django.template.loader import render_to_string
from django.test import Client

from chat.live import fragments
from chat.models import Event, Session, Turn
from chat.services import sharing
from tests.factories import logged_in_client, make_session, make_user

pytestmark = [pytest.mark.django_db]


def chat_with_tools(*, owner, workdir) -> tuple[Session, Turn]:
    chat = make_session(owner=owner, title="Cards", workdir=workdir)
    turn = Turn.objects.create(session=chat, author=owner, prompt="fix it", status=Turn.Status.DONE)
    Event.objects.create(
        turn=turn,
        kind=Event.Kind.TOOL_USE,
        name="Edit",
        data={
            "id": "t1",
            "input": {"file_path": f"{workdir}/app.py", "old_string": "x = 1\ny = 2", "new_string": "x = 1\ny = 3"},
        },
    )
    Event.objects.create(
        turn=turn, kind=Event.Kind.TOOL_RESULT, text="The file was updated.", data={"tool_use_id": "t1", "tool": "Edit"}
    )
    Event.objects.create(
        turn=turn,
        kind=Event.Kind.TOOL_USE,
        name="Bash",
        data={"id": "t2", "input": {"command": "pytest -q", "description": "Run the tests"}},
    )
    Event.objects.create(
        turn=turn,
        kind=Event.Kind.TOOL_RESULT,
        text="\n".join(f"line {i}" for i in range(60)),
        data={"tool_use_id": "t2", "tool": "Bash"},
    )
    Event.objects.create(
        turn=turn,
        kind=Event.Kind.TOOL_USE,
        name="TodoWrite",
        data={
            "id": "t3",
            "input": {
                "todos": [{"content": "Fix the bug", "status": "completed"}, {"content": "Ship", "status": "pending"}]
            },
        },
    )
    Event.objects.create(turn=turn, kind=Event.Kind.TEXT, text=f"Fixed **{workdir}/app.py** <script>alert(1)</script>")
    return chat, turn


def test_the_chat_page_shows_markdown_answers_and_tool_cards(claude_env):
    ada = make_user()
    chat, _ = chat_with_tools(owner=ada, workdir=claude_env.workdir)
    page = logged_in_client(user=ada).get(f"/chat/{chat.id}/").content.decode()
    # Its own folder's paths within it, as the card's: app.py.
    assert "<strong>app.py</strong> &lt;script&gt;" in page and "<script>alert" not in page
    assert '<code class="tool-subject">app.py</code>' in page and str(claude_env.workdir) not in page
    assert '<del class="line del">y = 2</del><ins class="line add">y = 3</ins>' in page
    assert 'aria-label="1 line added, 1 removed"' in page
    assert '<span class="prompt" aria-hidden="true">$ </span>pytest -q</pre>' in page and "Run the tests" in page
    assert "<summary>Show all 60 lines</summary>" in page
    assert re.search(r'<li class="todo-completed"><span class="check" aria-hidden="true">☑</span> Fix the bug', page)


def test_a_share_page_shows_the_same_cards_with_the_paths_hidden(claude_env):
    ada = make_user()
    chat, _ = chat_with_tools(owner=ada, workdir=claude_env.workdir)
    _, token = sharing.create_share_link(session=chat, user=ada, expires_in=None)
    page = Client().get(f"/share/{token}/").content.decode()
    assert str(claude_env.workdir) not in page
    assert "<strong>app.py</strong>" in page and '<code class="tool-subject">app.py</code>' in page
    assert '<ins class="line add">y = 3</ins>' in page


def test_a_streaming_answer_is_rendered_closed_live_and_on_reload(claude_env):
    ada = make_user()
    chat = make_session(owner=ada)
    turn = Turn.objects.create(session=chat, author=ada, prompt="code", status=Turn.Status.RUNNING)
    event = Event.objects.create(turn=turn, kind=Event.Kind.TEXT, text="Here:\n\n```python\nprint(1)", complete=False)
    live = fragments.event_replaced(event)
    reloaded = logged_in_client(user=ada).get(f"/chat/{chat.id}/").content.decode()
    block = '<pre class="highlight"><code><span class="nb">print</span><span class="p">(</span>'
    assert block in live and block in reloaded and "```" not in live and "```" not in reloaded


def test_a_permission_prompt_shows_the_edit_it_asks_for_and_its_buttons(claude_env):
    ada = make_user()
    chat = make_session(owner=ada)
    turn = Turn.objects.create(session=chat, author=ada, prompt="edit", status=Turn.Status.ASKING)
    event = Event.objects.create(
        turn=turn,
        kind=Event.Kind.PERMISSION,
        name="Edit",
        complete=False,
        data={
            "tool": "Edit",
            "status": "pending",
            "input": {"file_path": "a.txt", "old_string": "old", "new_string": "new"},
        },
    )
    html = render_to_string("chat/session.html#event", {"event": event, "may_answer": True})
    assert '<del class="line del">old</del><ins class="line add">new</ins>' in html
    assert f'hx-vals=\'{{"action": "permission", "event": {event.pk}, "answer": "allow"}}\'>Allow</button>' in html
