"""Finished turns are rendered once and reused; unfinished ones and shared pages render as they are."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from chat.models import Event, Turn
from chat.services import sharing
from tests.factories import logged_in_client, make_session, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def workdir(settings, tmp_path):
    settings.CLAUDE_WORKDIR = tmp_path / "work"


def page_of(client, chat) -> tuple[str, list[str]]:
    """The chat's turns as its page shows them, and the queries it took."""
    with CaptureQueriesContext(connection) as queries:
        html = client.get(chat.get_absolute_url()).content.decode()
    return html[html.index('<div id="turns"') : html.index('id="message-form"')], [
        q["sql"] for q in queries.captured_queries
    ]


def test_a_finished_turn_is_rendered_once_and_shown_the_same_from_then_on():
    ada = make_user()
    chat = make_session(owner=ada, title="Reused")
    turn = Turn.objects.create(
        session=chat,
        author=ada,
        prompt="what is <b>2+2</b>?",
        status=Turn.Status.DONE,
        duration_ms=1500,
        input_tokens=10,
        output_tokens=5,
    )
    Event.objects.create(turn=turn, kind=Event.Kind.TEXT, text="It is 4.")
    client = logged_in_client(user=ada)

    first, first_queries = page_of(client, chat)
    again, again_queries = page_of(client, chat)

    assert again == first
    assert "what is &lt;b&gt;2+2&lt;/b&gt;?" in again and "It is 4." in again and "1.5 s · 15 tokens" in again
    assert any('FROM "chat_event"' in q for q in first_queries)
    assert not any('FROM "chat_event"' in q for q in again_queries), "the second open renders no event"


def test_an_unfinished_turn_is_shown_as_it_is_now_each_time():
    ada = make_user()
    chat = make_session(owner=ada)
    turn = Turn.objects.create(session=chat, author=ada, prompt="slow", status=Turn.Status.RUNNING)
    event = Event.objects.create(turn=turn, kind=Event.Kind.TEXT, text="first words", complete=False)
    client = logged_in_client(user=ada)
    assert "first words" in page_of(client, chat)[0]

    event.text, event.complete = "first words and the rest", True
    event.save()
    Turn.objects.filter(pk=turn.pk).update(status=Turn.Status.DONE, duration_ms=2000)

    page = page_of(client, chat)[0]
    assert "first words and the rest" in page and "2.0 s" in page and "Running" not in page


def test_a_shared_page_hides_paths_though_the_owner_saw_them():
    ada = make_user()
    chat = make_session(owner=ada)
    turn = Turn.objects.create(session=chat, author=ada, prompt="where?", status=Turn.Status.DONE)
    Event.objects.create(turn=turn, kind=Event.Kind.TEXT, text=f"Wrote {chat.workdir}/notes.txt from /etc/hosts.")
    owner_page = page_of(logged_in_client(user=ada), chat)[0]
    # The owner sees the system's paths; none of the server's folders, on any page.
    assert "Wrote notes.txt from /etc/hosts." in owner_page

    _link, token = sharing.create_share_link(session=chat, user=ada, expires_in=None)
    shared = logged_in_client(user=make_user()).get(f"/share/{token}/").content.decode()
    assert "Wrote notes.txt from …/hosts." in shared and chat.workdir not in shared


def test_a_prompt_still_open_is_never_kept_so_its_answer_buttons_follow_the_prompt():
    ada = make_user(username="ada")
    chat = make_session(owner=ada)
    turn = Turn.objects.create(session=chat, author=ada, prompt="write it", status=Turn.Status.ERROR)
    prompt = Event.objects.create(
        turn=turn,
        kind=Event.Kind.PERMISSION,
        name="Write",
        data={"tool": "Write", "input": {"file_path": "a.txt"}, "status": "pending"},
    )
    client = logged_in_client(user=ada)
    assert "Always allow Write in this chat" in page_of(client, chat)[0]

    prompt.data = {**prompt.data, "status": "denied", "by": "ada"}
    prompt.save()

    page = page_of(client, chat)[0]
    assert "Denied by ada." in page and "Always allow Write in this chat" not in page
    assert page_of(client, chat)[0] == page  # settled now: kept, and shown the same
