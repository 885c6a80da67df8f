"""The admin as staff meet it: find chats, see their cost, archive, stop, unshare and delete them."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.test import Client
from django.utils import timezone

from chat.models import Event, Session, ShareLink, Turn
from chat.services import sharing, turns
from chat.services.tokens import issue_token
from tests.factories import logged_in_client, make_session, make_user

pytestmark = [pytest.mark.usefixtures("rt"), pytest.mark.django_db]

SESSIONS = "/admin/chat/session/"


def staff(engine=None) -> Client:
    return logged_in_client(user=make_user(username="root", is_staff=True), engine=engine)


def act(client: Client, action: str, *chats: Session, **extra) -> str:
    response = client.post(
        SESSIONS, {"action": action, ACTION_CHECKBOX_NAME: [str(c.pk) for c in chats], **extra}, follow=True
    )
    assert response.status_code == 200
    return response.content.decode()


def fake_transcript(chat: Session) -> Path:
    path = Path(chat.transcript_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"type":"user","message":{"role":"user","content":"hi"}}\n')
    return path


def chat_with_usage(*, owner, title: str) -> Session:
    chat = make_session(owner=owner, title=title)
    for tokens in (100, 250):
        Turn.objects.create(
            session=chat,
            author=owner,
            prompt=f"{title} {tokens}",
            status=Turn.Status.DONE,
            input_tokens=tokens,
            output_tokens=10,
            cost_usd=0.125,
        )
    return chat


def test_non_staff_and_anonymous_people_cannot_reach_the_admin(claude_env):
    chat = make_session(owner=make_user())
    for client in (Client(), logged_in_client(user=make_user())):
        for path in (
            "/admin/",
            SESSIONS,
            f"{SESSIONS}{chat.pk}/change/",
            "/admin/chat/turn/",
            "/admin/chat/sharelink/",
        ):
            response = client.get(path)
            assert response.status_code == 302 and response.url.startswith("/admin/login/"), path
        assert (
            client.post(
                SESSIONS, {"action": "delete_selected", ACTION_CHECKBOX_NAME: [str(chat.pk)], "post": "yes"}
            ).status_code
            == 302
        )
    assert Session.objects.filter(pk=chat.pk).exists()


def test_changelist_shows_owner_status_counts_tokens_cost_and_sharing(claude_env):
    ada = make_user(username="ada")
    chat = chat_with_usage(owner=ada, title="Budget review")
    sharing.create_share_link(session=chat, user=ada, expires_in=None)
    archived = make_session(owner=ada, title="Old stuff")
    Session.objects.filter(pk=archived.pk).update(archived_at=timezone.now(), status=Session.Status.ARCHIVED)
    page = staff().get(SESSIONS).content.decode()
    assert "Budget review" in page and "Old stuff" in page and ">ada<" in page
    assert f'/admin/chat/turn/?session__id__exact={chat.pk}">2</a>' in page
    assert ">370<" in page and "$0.2500" in page and "Archived" in page
    assert page.count('alt="True"') == 1  # shared


def test_search_by_title_uuid_and_owner(claude_env):
    ada, bob = make_user(username="ada"), make_user(username="bob")
    first = make_session(owner=ada, title="Kubernetes notes")
    second = make_session(owner=bob, title="Lunch")
    client = staff()
    by_title = client.get(SESSIONS, {"q": "kubern"}).content.decode()
    assert "Kubernetes notes" in by_title and "Lunch" not in by_title
    by_uuid = client.get(SESSIONS, {"q": str(second.pk)}).content.decode()
    assert "Lunch" in by_uuid and "Kubernetes notes" not in by_uuid
    by_owner = client.get(SESSIONS, {"q": "bob"}).content.decode()
    assert "Lunch" in by_owner and "Kubernetes notes" not in by_owner
    turns_of_first = client.get("/admin/chat/turn/", {"q": str(first.pk)})
    assert turns_of_first.status_code == 200


def test_filters_by_status_owner_archived_and_shared(claude_env):
    ada, bob = make_user(username="ada"), make_user(username="bob")
    running = make_session(owner=ada, title="Busy one")
    Session.objects.filter(pk=running.pk).update(status=Session.Status.RUNNING)
    archived = make_session(owner=bob, title="Stored one")
    Session.objects.filter(pk=archived.pk).update(archived_at=timezone.now(), status=Session.Status.ARCHIVED)
    shared = make_session(owner=bob, title="Public one")
    sharing.create_share_link(session=shared, user=bob, expires_in=None)
    client = staff()

    def titles(**params) -> set[str]:
        page = client.get(SESSIONS, params).content.decode()
        return {t for t in ("Busy one", "Stored one", "Public one") if t in page}

    assert titles(status="running") == {"Busy one"}
    assert titles(owner__id__exact=bob.pk) == {"Stored one", "Public one"}
    assert titles(archived="yes") == {"Stored one"}
    assert titles(archived="no") == {"Busy one", "Public one"}
    assert titles(shared="yes") == {"Public one"}


def test_change_page_shows_share_links_and_leads_to_read_only_turns(claude_env):
    ada = make_user()
    chat = chat_with_usage(owner=ada, title="Inspect me")
    turn = Turn.objects.filter(session=chat).first()
    Event.objects.create(turn=turn, kind=Event.Kind.TEXT, text="an answer")
    other = chat_with_usage(owner=ada, title="Not this")
    sharing.create_share_link(session=chat, user=ada, expires_in=None)
    client = staff()

    page = client.get(f"{SESSIONS}{chat.pk}/change/").content.decode()
    assert "Share links" in page and "live" in page and chat.transcript_path in page

    listed = client.get("/admin/chat/turn/", {"session__id__exact": str(chat.pk)}).content.decode()
    assert "Inspect me 100" in listed and "Not this" not in listed and str(other.pk) not in listed
    detail = client.get(f"/admin/chat/turn/{turn.pk}/change/").content.decode()
    assert "an answer" in detail and 'name="_save"' not in detail
    Event.objects.create(turn=turn, kind=Event.Kind.TEXT, text="**bold** <script>alert(1)</script>")
    detail = client.get(f"/admin/chat/turn/{turn.pk}/change/").content.decode()
    # Answers show as the chat shows them: rendered Markdown, their HTML inert.
    assert (
        "<p><strong>bold</strong> &lt;script&gt;alert(1)&lt;/script&gt;</p>" in detail and "<script>alert" not in detail
    )
    assert client.post(f"/admin/chat/turn/{turn.pk}/delete/").status_code == 403
    assert client.get("/admin/chat/session/add/").status_code == 403


def test_staff_can_retitle_a_chat(claude_env):
    chat = make_session(owner=make_user(), title="typo")
    response = staff().post(
        f"{SESSIONS}{chat.pk}/change/",
        {"title": "Fixed title", "share_links-TOTAL_FORMS": "0", "share_links-INITIAL_FORMS": "0"},
    )
    assert response.status_code == 302, response.content.decode()
    assert Session.objects.get(pk=chat.pk).title == "Fixed title"


def test_archive_now_action(claude_env):
    ada = make_user()
    chat = make_session(owner=ada, title="Done with it")
    transcript = fake_transcript(chat)
    busy = make_session(owner=ada, title="Still going")
    Turn.objects.create(session=busy, prompt="x", status=Turn.Status.RUNNING)

    page = act(staff(), "archive_now", chat, busy)
    assert "Archived 1 chat." in page
    assert "“Still going” was not archived: a turn is running or queued in it" in page
    chat.refresh_from_db()
    assert chat.is_archived and not transcript.exists() and Path(chat.archive_path).is_file()
    assert not Session.objects.get(pk=busy.pk).is_archived


def test_revoke_share_links_action(claude_env):
    ada = make_user()
    chat = make_session(owner=ada)
    _link, token = sharing.create_share_link(session=chat, user=ada, expires_in=None)
    sharing.create_share_link(session=chat, user=ada, expires_in=None)
    client = staff()
    assert "Revoked 2 share links" in act(client, "revoke_share_links", chat)
    assert not ShareLink.objects.live().exists()
    assert Client().get(f"/share/{token}/").status_code == 404

    _link, token = sharing.create_share_link(session=chat, user=ada, expires_in=None)
    assert "live" in client.get("/admin/chat/sharelink/", {"state": "live"}).content.decode()
    links = client.post(
        "/admin/chat/sharelink/", {"action": "revoke", ACTION_CHECKBOX_NAME: [str(_link.pk)]}, follow=True
    )
    assert "Revoked 1 share link." in links.content.decode()
    assert Client().get(f"/share/{token}/").status_code == 404


def test_delete_asks_with_a_summary_then_removes_the_transcript(claude_env):
    chat = chat_with_usage(owner=make_user(), title="Throw away")
    transcript = fake_transcript(chat)
    client = staff()
    confirm = act(client, "delete_selected", chat)
    assert "Are you sure" in confirm and "Throw away" in confirm and "Messages: 2" in confirm
    assert Session.objects.filter(pk=chat.pk).exists()

    act(client, "delete_selected", chat, post="yes")
    assert not Session.objects.filter(pk=chat.pk).exists() and not transcript.exists()

    single = make_session(owner=make_user(), title="One alone")
    one_transcript = fake_transcript(single)
    assert "Are you sure" in client.get(f"{SESSIONS}{single.pk}/delete/").content.decode()
    client.post(f"{SESSIONS}{single.pk}/delete/", {"post": "yes"})
    assert not Session.objects.filter(pk=single.pk).exists() and not one_transcript.exists()


def test_delete_of_a_busy_chat_is_refused(claude_env):
    chat = make_session(owner=make_user(), title="Working")
    Turn.objects.create(session=chat, prompt="x", status=Turn.Status.QUEUED)
    client = staff()
    page = act(client, "delete_selected", chat)
    assert "“Working”: a message is running or queued. Stop it" in page and "Yes, I’m sure" not in page
    act(client, "delete_selected", chat, post="yes")
    assert Session.objects.filter(pk=chat.pk).exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.real_cli
async def test_stop_action_stops_a_running_turn_in_this_process(claude_env, rt):
    user = await sync_to_async(make_user)()
    chat = await sync_to_async(make_session)(owner=user, title="Long answer")
    turn = await turns.submit_message(engine=rt, session_id=chat.id, user=user, text="slow 20")
    for _ in range(200):
        if await Event.objects.filter(turn=turn).aexists():
            break
        await asyncio.sleep(0.05)
    client = await sync_to_async(staff)(rt)
    # The admin view runs in a worker thread, as under Daphne, and reaches this loop's engine.
    page = await sync_to_async(act)(client, "stop_running_turn", chat)
    assert "Stopped the running turn of 1 chat." in page
    await rt.turns.idle()
    assert (await Turn.objects.aget(pk=turn.pk)).status == Turn.Status.STOPPED
    again = await sync_to_async(act)(client, "stop_running_turn", chat)
    assert "No turn was running in the selected chats" in again


def test_staff_see_api_tokens_without_their_keys():
    staff = make_user(is_staff=True)
    owner = make_user()
    key = issue_token(user=owner).key
    client = logged_in_client(user=staff)
    tokens_page = client.get("/admin/chat/apitoken/")
    assert tokens_page.status_code == 200
    assert owner.username in tokens_page.content.decode()
    assert key not in tokens_page.content.decode()
