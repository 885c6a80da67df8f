"""Share links as their owner and their readers meet them: create, open without login, revoke, expire."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from chat.models import Event, Session, ShareLink, Turn
from chat.services import sharing
from tests.factories import logged_in_client, make_session, make_user

pytestmark = [pytest.mark.usefixtures("rt"), pytest.mark.django_db]

HX = {"HTTP_HX_REQUEST": "true"}
LINK_RE = re.compile(r'value="(http://testserver/share/([A-Za-z0-9_-]+)/)"')


def share(client: Client, chat: Session, expires: str = "never") -> tuple[str, str]:
    """Press "Create link" as the owner; returns the link shown and its token."""
    response = client.post(f"/chat/{chat.id}/share/new/", {"expires": expires})
    assert response.status_code == 200
    match = LINK_RE.search(response.content.decode())
    assert match, response.content.decode()
    return match.group(1), match.group(2)


def chat_with_tool_call(*, owner, workdir) -> Session:
    """A chat whose turn wrote a file and ran a command, as the runner records them."""
    chat = make_session(owner=owner, title="Notes", workdir=workdir)
    turn = Turn.objects.create(
        session=chat, author=owner, prompt=f"write {workdir}/notes.txt: hi", status=Turn.Status.DONE
    )
    Event.objects.create(
        turn=turn,
        kind=Event.Kind.TOOL_USE,
        name="Write",
        data={"id": "t1", "input": {"file_path": f"{workdir}/notes.txt", "content": "hi"}},
    )
    Event.objects.create(
        turn=turn,
        kind=Event.Kind.TOOL_RESULT,
        text=f"File created successfully at: {workdir}/notes.txt",
        data={"tool_use_id": "t1"},
    )
    Event.objects.create(
        turn=turn,
        kind=Event.Kind.TOOL_USE,
        name="Bash",
        data={"id": "t2", "input": {"command": "cat /etc/hostname /srv/secret/keys.txt"}},
    )
    Event.objects.create(turn=turn, kind=Event.Kind.TEXT, text=f"Done: {workdir}/notes.txt holds it.")
    return chat


def test_owner_creates_a_link_that_anyone_can_open_without_login(claude_env):
    ada = make_user()
    chat = chat_with_tool_call(owner=ada, workdir=claude_env.workdir)
    client = logged_in_client(user=ada)
    assert "Create link" in client.get(f"/chat/{chat.id}/share/").content.decode()

    url, token = share(client, chat)
    assert len(token) >= 43  # 32 random bytes: 256 bits
    link = ShareLink.objects.get(session=chat)
    assert link.token_hash == sharing.hash_token(token) and token not in link.token_hash
    assert link.expires_at is None and link.created_by == ada
    # Shown once: the share page does not show it again.
    assert token not in client.get(f"/chat/{chat.id}/share/").content.decode()

    response = Client().get(f"/share/{token}/")
    page = response.content.decode()
    assert response.status_code == 200
    assert "Notes" in page and "Done: notes.txt holds it." in page
    assert response["Referrer-Policy"] == "no-referrer" and "noindex" in response["X-Robots-Tag"]
    assert "no-cache" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]


def test_shared_page_is_read_only_and_hides_the_servers_paths(claude_env, settings):
    ada = make_user()
    chat = chat_with_tool_call(owner=ada, workdir=claude_env.workdir)
    _url, token = share(logged_in_client(user=ada), chat)
    page = Client().get(f"/share/{token}/").content.decode()

    # Its one live connection is the link's own, which only reads (chat/web/consumers.py's ShareConsumer).
    assert page.count("ws-connect") == 1 and f'ws-connect="/ws/share/{token}/"' in page and "ws-send" not in page
    assert 'id="message"' not in page and "<textarea" not in page and "Stop" not in page
    assert "Rename" not in page and "Delete" not in page and f"/chat/{chat.id}/" not in page
    for secret in (str(claude_env.workdir), str(claude_env.config_dir), chat.transcript_path, "/srv/secret", "/etc/"):
        assert secret not in page, secret
    assert "notes.txt" in page and "…/keys.txt" in page and "…/hostname" in page
    assert "File created successfully at: notes.txt" in page


def test_html_in_messages_is_escaped(claude_env):
    ada = make_user()
    chat = make_session(owner=ada, title="<b>bold title</b>")
    turn = Turn.objects.create(
        session=chat, author=ada, prompt="<script>alert('prompt')</script>", status=Turn.Status.DONE
    )
    Event.objects.create(
        turn=turn, kind=Event.Kind.TEXT, text="<script>alert('answer')</script><img src=x onerror=alert(1)>"
    )
    _url, token = share(logged_in_client(user=ada), chat)
    page = Client().get(f"/share/{token}/").content.decode()
    assert "<script>alert" not in page and "<img src=x" not in page and "<b>bold" not in page
    assert "&lt;script&gt;alert(&#x27;prompt&#x27;)&lt;/script&gt;" in page
    # The answer is Markdown, sanitised: its HTML is text.
    assert "<p>&lt;script&gt;alert('answer')&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;</p>" in page
    assert "&lt;b&gt;bold title&lt;/b&gt;" in page


def test_shared_page_shows_the_latest_state_on_reload(claude_env):
    ada = make_user()
    chat = make_session(owner=ada, title="Growing")
    _url, token = share(logged_in_client(user=ada), chat)
    assert "No messages yet." in Client().get(f"/share/{token}/").content.decode()
    Turn.objects.create(session=chat, author=ada, prompt="a later question", status=Turn.Status.RUNNING)
    page = Client().get(f"/share/{token}/").content.decode()
    assert "a later question" in page and "Running" in page


def test_revoked_link_answers_not_found(claude_env):
    ada = make_user()
    chat = make_session(owner=ada, title="Private again")
    client = logged_in_client(user=ada)
    _url, token = share(client, chat)
    link = ShareLink.objects.get(session=chat)
    panel = client.post(f"/chat/{chat.id}/share/{link.id}/revoke/", **HX).content.decode()
    assert 'id="share-panel"' in panel and "Revoked" in panel and "<html" not in panel

    response = Client().get(f"/share/{token}/")
    assert response.status_code == 404
    assert "This link does not work" in response.content.decode()
    assert "Ask the person who shared it for a new link." in response.content.decode()
    assert "Private again" not in response.content.decode()


def test_expired_link_answers_not_found(claude_env):
    ada = make_user()
    chat = make_session(owner=ada)
    _url, token = share(logged_in_client(user=ada), chat, expires="1h")
    link = ShareLink.objects.get(session=chat)
    assert timedelta(minutes=59) < link.expires_at - timezone.now() <= timedelta(hours=1)
    assert Client().get(f"/share/{token}/").status_code == 200
    ShareLink.objects.filter(pk=link.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert Client().get(f"/share/{token}/").status_code == 404
    assert "Expired" in logged_in_client(user=ada).get(f"/chat/{chat.id}/share/").content.decode()


def test_guessed_and_malformed_tokens_answer_not_found(claude_env):
    ada = make_user()
    chat = make_session(owner=ada)
    _url, token = share(logged_in_client(user=ada), chat)
    anyone = Client()
    guessed = token[:-1] + ("A" if token[-1] != "A" else "B")
    for path in (
        f"/share/{guessed}/",
        f"/share/{token[:-1]}/",
        f"/share/{token}x/",
        "/share/x/",
        f"/share/{sharing.hash_token(token)}/",
        f"/share/{chat.id}/",
        "/share/..%2F..%2Fetc%2Fpasswd/",
        f"/share/{guessed}/older/?before=1",
    ):
        assert anyone.get(path).status_code == 404, path


def test_a_path_in_place_of_a_uuid_is_not_found(claude_env):
    client = logged_in_client(user=make_user())
    for path in (
        "/chat/..%2F..%2Fetc%2Fpasswd/share/",
        "/chat/%2Fetc%2Fpasswd/",
        "/chat/etc/passwd/delete/",
        "/chat/not-a-uuid/rename/",
        "/chat/../../etc/passwd/older/",
    ):
        assert client.get(path).status_code == 404, path


def test_only_the_owner_manages_links(claude_env):
    ada = make_user()
    chat = make_session(owner=ada, title="Ada's")
    _url, token = share(logged_in_client(user=ada), chat)
    link = ShareLink.objects.get(session=chat)
    intruder = logged_in_client(user=make_user())
    assert intruder.get(f"/chat/{chat.id}/share/").status_code == 404
    assert intruder.post(f"/chat/{chat.id}/share/new/", {"expires": "never"}).status_code == 404
    assert intruder.post(f"/chat/{chat.id}/share/{link.id}/revoke/").status_code == 404
    assert ShareLink.objects.filter(session=chat).count() == 1 and ShareLink.objects.get().revoked_at is None
    # A link id of one chat cannot be revoked through another chat of the owner.
    other = make_session(owner=ada)
    assert logged_in_client(user=ada).post(f"/chat/{other.id}/share/{link.id}/revoke/").status_code == 404
    # Anonymous people are sent to log in.
    assert Client().get(f"/chat/{chat.id}/share/").status_code == 302
    assert Client().get(f"/share/{token}/").status_code == 200


def test_expiry_must_be_one_of_the_choices(claude_env):
    ada = make_user()
    chat = make_session(owner=ada)
    page = logged_in_client(user=ada).post(f"/chat/{chat.id}/share/new/", {"expires": "forever"}).content.decode()
    assert "Choose when the link expires from the list." in page
    assert not ShareLink.objects.exists()


def test_long_shared_chats_load_older_turns_through_the_link(claude_env):
    ada = make_user()
    chat = make_session(owner=ada, workdir=claude_env.workdir)
    start = timezone.now() - timedelta(hours=1)
    made = Turn.objects.bulk_create(
        Turn(
            session=chat,
            prompt=f"q{n} in {claude_env.workdir}/x",
            status=Turn.Status.DONE,
            created_at=start + timedelta(seconds=n),
        )
        for n in range(60)
    )
    _url, token = share(logged_in_client(user=ada), chat)
    page = Client().get(f"/share/{token}/").content.decode()
    first_shown = made[10]
    assert f"/share/{token}/older/?before={first_shown.id}" in page
    older = Client().get(f"/share/{token}/older/", {"before": first_shown.id}, **HX)
    assert older.status_code == 200 and older.content.decode().count('<article class="turn"') == 10
    assert str(claude_env.workdir) not in older.content.decode() and "q0 in x" in older.content.decode()


def test_the_chat_list_and_chat_page_lead_to_sharing(claude_env):
    ada = make_user()
    chat = make_session(owner=ada, title="Team notes")
    client = logged_in_client(user=ada)
    assert f'href="/chat/{chat.id}/share/">Share</a>' in client.get(chat.get_absolute_url()).content.decode()
    share(client, chat)
    assert f'<a class="badge shared" href="/chat/{chat.id}/share/"' in client.get("/").content.decode()
