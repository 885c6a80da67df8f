"""A chat's websocket (re)connecting sends what the page lacks, from what the page says it shows,
through the real ASGI application and channel layer."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.utils import timezone

from chat.live import notify
from chat.models import Event, Session, Turn
from project.asgi import application_for
from tests.factories import logged_in_client, make_session, make_user, receive_until, ws_headers

pytestmark = [pytest.mark.usefixtures("rt"), pytest.mark.django_db(transaction=True)]


@sync_to_async
def long_chat(count: int):
    """A chat of ``count`` finished turns, one answer each; its owner's logged-in client."""
    user = make_user()
    chat = make_session(owner=user, title="Long")
    start = timezone.now() - timedelta(days=1)
    made = Turn.objects.bulk_create(
        Turn(
            session=chat,
            author=user,
            prompt=f"question {n}",
            status=Turn.Status.DONE,
            created_at=start + timedelta(seconds=n),
        )
        for n in range(count)
    )
    made = list(Turn.objects.filter(session=chat).order_by("created_at", "id"))
    Event.objects.bulk_create(Event(turn=turn, kind=Event.Kind.TEXT, text=f"answer {n}") for n, turn in enumerate(made))
    return chat, logged_in_client(user=user)


def shown(chat: Session, *, unfinished: tuple[int, ...] = ()) -> str:
    """What a page showing everything of the chat so far says when it connects."""
    turn = Turn.objects.filter(session=chat).order_by("-id").first()
    event = Event.objects.filter(turn__session=chat).order_by("-id").first()
    return f"turn={turn.pk if turn else 0}&event={event.pk if event else 0}&unfinished={','.join(map(str, unfinished))}"


async def connect(rt, chat: Session, client, query: str = "") -> tuple[WebsocketCommunicator, str]:
    communicator = WebsocketCommunicator(
        application_for(rt), f"/ws/chat/{chat.id}/" + (f"?{query}" if query else ""), headers=ws_headers(client=client)
    )
    connected, _code = await communicator.connect()
    assert connected
    return communicator, await communicator.receive_from(timeout=10)


async def test_an_up_to_date_page_gets_only_the_chat_state_on_connect(claude_env, rt):
    chat, client = await long_chat(120)
    communicator, first = await connect(rt, chat, client, await sync_to_async(shown)(chat))
    assert 'id="session-state"' in first and "<article" not in first and 'id="turns"' not in first
    assert len(first) < 2000, "no render of the recent turns"
    assert await communicator.receive_nothing(timeout=0.2)
    await communicator.disconnect()


async def test_a_reconnecting_page_gets_the_turns_added_while_it_was_away(claude_env, rt):
    chat, client = await long_chat(60)
    since = await sync_to_async(shown)(chat)
    for text in ("sent from another tab", "and another"):
        new = await Turn.objects.acreate(session=chat, prompt=text, status=Turn.Status.DONE)
        await Event.objects.acreate(turn=new, kind=Event.Kind.TEXT, text=f"answer to {text}")

    communicator, first = await connect(rt, chat, client, since)

    assert first.count('<div hx-swap-oob="beforeend:#turns">') == 2 and first.count("<article") == 2
    assert first.index("answer to sent from another tab") < first.index("answer to and another")
    assert "question 59" not in first and 'id="turns"' not in first
    await communicator.disconnect()


async def test_a_turn_the_page_showed_running_comes_whole_as_it_is_now(claude_env, rt):
    chat, client = await long_chat(3)
    turn = await Turn.objects.acreate(session=chat, prompt="slow one", status=Turn.Status.RUNNING)
    streaming = await Event.objects.acreate(turn=turn, kind=Event.Kind.TEXT, text="half an", complete=False)
    since = await sync_to_async(shown)(chat, unfinished=(turn.pk,))
    streaming.text, streaming.complete = "half an answer, now whole", True
    await streaming.asave()
    await Turn.objects.filter(pk=turn.pk).aupdate(status=Turn.Status.DONE, duration_ms=1500)

    communicator, first = await connect(rt, chat, client, since)

    assert f'<article class="turn" id="turn-{turn.pk}" hx-swap-oob="outerHTML">' in first
    assert "half an answer, now whole" in first and "1.5 s" in first and "Running" not in first
    assert first.count("<article") == 1
    await communicator.disconnect()


@pytest.mark.parametrize(
    "query", ["", "turn=0&event=0&unfinished=", "turn=abc&event=1", "turn=1&event=1&unfinished=1;2"]
)
async def test_a_page_that_lacks_too_much_or_says_nothing_usable_gets_the_latest_turns_whole(claude_env, query, rt):
    chat, client = await long_chat(60)
    communicator, first = await connect(rt, chat, client, query)
    assert '<div id="turns" class="turns" aria-live="polite" hx-swap-oob="outerHTML">' in first
    assert first.count("<article") == 50 and "question 59" in first and "question 9<" not in first
    await communicator.disconnect()


async def test_what_the_connect_already_sent_is_not_appended_twice(claude_env, rt):
    chat, client = await long_chat(2)
    since = await sync_to_async(shown)(chat)
    session = await Session.objects.aget(pk=chat.pk)
    turn = await Turn.objects.acreate(session=chat, prompt="missed while away", status=Turn.Status.RUNNING)
    missed = await Event.objects.acreate(turn=turn, kind=Event.Kind.TEXT, text="its first words")
    communicator, first = await connect(rt, chat, client, since)
    assert "missed while away" in first and "its first words" in first

    # Their notifications, still in flight when the socket joined, arrive after the catch-up.
    await notify.turn_added(turn, session)
    await notify.event_added(missed, chat.id)
    later = await Event.objects.acreate(turn=turn, kind=Event.Kind.TEXT, text="said later")
    await notify.event_added(later, chat.id)
    # Only the sidebar's list (a new turn moves the chat up) and what came later.
    again = await receive_until(communicator, "said later", timeout=5)
    assert 'id="recent-chats"' in again and "its first words" not in again and "<article" not in again
    await communicator.disconnect()


@pytest.mark.real_cli
async def test_a_message_on_a_page_that_connected_with_what_it_shows_streams_once(claude_env, rt):
    chat, client = await long_chat(1)
    communicator, _first = await connect(rt, chat, client, await sync_to_async(shown)(chat))
    await communicator.send_to(text_data=json.dumps({"message": "My name is Ada"}))
    seen = ""
    while " tokens · $" not in seen:
        seen += await communicator.receive_from(timeout=20)
    await rt.turns.idle()
    turn = await Turn.objects.filter(session=chat).alast()
    assert seen.count(f'<article class="turn" id="turn-{turn.pk}"') == 1
    assert "Nice to meet you, Ada." in seen
    await communicator.disconnect()


async def test_a_page_that_connects_gets_the_memory_its_agent_read_meanwhile(claude_env, rt):
    """The memory may be read between the page's load and its socket's joining the chat's group."""
    chat, client = await long_chat(2)
    query = await sync_to_async(shown)(chat)
    files = [{"path": "CLAUDE.md", "inside": True, "size": 46, "size_text": "46 B", "reason": "session_start"}]
    await Session.objects.filter(pk=chat.pk).aupdate(memory_read={"turn": 1, "prompt": "hi", "files": files})
    communicator, first = await connect(rt, chat, client, query)
    assert 'id="memory-note"' in first and ">CLAUDE.md</a> (46 B)" in first
    await communicator.disconnect()
