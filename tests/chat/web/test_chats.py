"""The chat list as a person meets it: order, preview, search, pages, rename, delete, older turns."""

from __future__ import annotations

import os
import re
import time
from datetime import timedelta
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from chat import selectors
from chat.models import Event, Session, ShareLink, Turn
from chat.services import chats, sharing, turns
from chat.web.views.chats import PER_PAGE
from tests.factories import logged_in_client, make_session, make_user

pytestmark = [pytest.mark.usefixtures("rt"), pytest.mark.django_db]

HX = {"HTTP_HX_REQUEST": "true"}


def add_turn(session: Session, *, prompt: str, answer: str = "", status: str = Turn.Status.DONE, **fields) -> Turn:
    turn = Turn.objects.create(session=session, author=session.owner, prompt=prompt, status=status, **fields)
    if answer:
        Event.objects.create(turn=turn, kind=Event.Kind.TEXT, text=answer)
    return turn


def active(session: Session, *, minutes_ago: float) -> None:
    Session.objects.filter(pk=session.pk).update(last_activity_at=timezone.now() - timedelta(minutes=minutes_ago))


async def run_real_turn(rt, session: Session, text: str) -> Turn:
    """One turn through the real runner and CLI, waited for (on the test's own loop, where the
    runtime and its egress proxy serve)."""
    turn = await turns.submit_message(engine=rt, session_id=session.id, user=session.owner, text=text)
    await rt.turns.idle()
    return await Turn.objects.aget(pk=turn.pk)


# ---------------------------------------------------------------------------------------
# The list


def test_list_shows_own_chats_newest_activity_first_with_preview_status_and_sharing(claude_env):
    ada, bob = make_user(), make_user()
    old = make_session(owner=ada, title="Old plans")
    add_turn(old, prompt="first question", answer="The old answer")
    new = make_session(owner=ada, title="Fresh work")
    add_turn(new, prompt="what now?", status=Turn.Status.QUEUED)
    Session.objects.filter(pk=new.pk).update(status=Session.Status.QUEUED)
    archived = make_session(owner=ada, title="Put away")
    Session.objects.filter(pk=archived.pk).update(archived_at=timezone.now(), status=Session.Status.ARCHIVED)
    sharing.create_share_link(session=old, user=ada, expires_in=None)
    make_session(owner=bob, title="Bob's secret")
    active(old, minutes_ago=30)
    active(new, minutes_ago=1)
    active(archived, minutes_ago=90)

    page = logged_in_client(user=ada).get("/").content.decode()

    assert page.index("Fresh work") < page.index("Old plans") < page.index("Put away")
    assert "Bob&#x27;s secret" not in page and "Bob's secret" not in page
    assert "The old answer" in page  # the latest assistant text is the preview
    assert "what now?" in page  # no answer yet: the prompt is
    assert 'status-queued">Queued' in page and 'status-archived">Archived' in page and 'status-idle">Idle' in page
    assert page.count('class="badge shared"') == 1
    assert "30\xa0minutes ago" in page
    # Under a minute is "just now", never "0 minutes ago".
    active(new, minutes_ago=0.2)
    page = logged_in_client(user=ada).get("/").content.decode()
    assert "just now" in page and ">0\xa0minutes" not in page


def test_expired_or_revoked_links_do_not_mark_a_chat_shared(claude_env):
    ada = make_user()
    chat = make_session(owner=ada, title="Once shared")
    link, _token = sharing.create_share_link(session=chat, user=ada, expires_in=timedelta(hours=1))
    ShareLink.objects.filter(pk=link.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    other, _token = sharing.create_share_link(session=chat, user=ada, expires_in=None)
    sharing.revoke_share_links(links=ShareLink.objects.filter(pk=other.pk))
    assert 'class="badge shared"' not in logged_in_client(user=ada).get("/").content.decode()


def test_long_lists_come_in_pages(claude_env):
    ada = make_user()
    for number in range(PER_PAGE + 5):
        chat = make_session(owner=ada, title=f"Chat number {number:03}")
        active(chat, minutes_ago=number)
    client = logged_in_client(user=ada)

    first = client.get("/").content.decode()
    assert first.count('class="chat-row"') == PER_PAGE
    assert "Chat number 000" in first and f"Chat number {PER_PAGE:03}" not in first
    assert "Page 1 of 2" in first and 'rel="next"' in first

    second = client.get("/?page=2").content.decode()
    assert second.count('class="chat-row"') == 5
    assert f"Chat number {PER_PAGE + 4:03}" in second and 'rel="prev"' in second
    # A page number out of range or not a number still shows a page.
    assert client.get("/?page=99").status_code == 200
    assert "Page 1 of 2" in client.get("/?page=abc").content.decode()


def test_search_finds_titles_prompts_and_answers_of_own_chats_only(claude_env):
    ada, bob = make_user(), make_user()
    make_session(owner=ada, title="Kubernetes upgrade")
    by_prompt = make_session(owner=ada, title="Misc")
    add_turn(by_prompt, prompt="How do I rotate the kubernetes certificates?")
    by_answer = make_session(owner=ada, title="Other")
    add_turn(by_answer, prompt="cluster?", answer="Use KUBERNETES 1.31 for that.")
    make_session(owner=ada, title="Unrelated")
    add_turn(make_session(owner=bob, title="Bob on Kubernetes"), prompt="kubernetes")
    client = logged_in_client(user=ada)

    whole = client.get("/", {"q": "kubernetes"}).content.decode()
    page = whole[whole.index('id="chat-list"') :]  # the sidebar lists every recent chat
    assert "Kubernetes upgrade" in page and "Misc" in page and "Other" in page
    assert "Unrelated" not in page and "Bob on" not in whole
    assert "3 chats match" in page

    # Every word must match somewhere; the list asked for by the search box comes alone.
    partial = client.get("/", {"q": "kubernetes certificates"}, **HX, HTTP_HX_TARGET="chat-list").content.decode()
    assert "Misc" in partial and "Kubernetes upgrade" not in partial
    assert "1 chat matches" in partial
    assert "<html" not in partial and 'id="chat-list"' in partial

    nothing = client.get("/", {"q": "zebra"}).content.decode()
    assert "No chat has “zebra” in its title or messages" in nothing


def test_the_list_needs_a_login():
    response = logged_in_client(user=make_user()).get("/")
    assert response.status_code == 200
    from django.test import Client

    assert Client().get("/").url.startswith("/accounts/login/")


# ---------------------------------------------------------------------------------------
# Rename


def test_rename_from_the_list_swaps_the_row(claude_env):
    ada = make_user()
    chat = make_session(owner=ada, title="Old name")
    client = logged_in_client(user=ada)
    response = client.post(
        f"/chat/{chat.id}/rename/", {"title": "  New   name "}, **HX, HTTP_HX_TARGET=f"chat-{chat.id}"
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith(f'<li id="chat-{chat.id}"') and "New name" in html
    assert Session.objects.get(pk=chat.pk).title == "New name"


def test_rename_errors_say_what_to_do(claude_env):
    ada = make_user()
    chat = make_session(owner=ada, title="Keep me")
    client = logged_in_client(user=ada)
    html = client.post(
        f"/chat/{chat.id}/rename/", {"title": "   "}, **HX, HTTP_HX_TARGET=f"chat-{chat.id}"
    ).content.decode()
    assert (
        "Type a title first." in html
        and 'role="alert"' in html
        and re.search(r"<details class=\"rename\"\s+open", html)
    )
    long = client.post(f"/chat/{chat.id}/rename/", {"title": "x" * 121}, follow=True).content.decode()
    assert "The title is 121 characters long; the limit is 120. Shorten it." in long
    nul = client.post(f"/chat/{chat.id}/rename/", {"title": "a\x00b"}, follow=True).content.decode()
    assert "The title holds a NUL character, which cannot be stored." in nul
    assert Session.objects.get(pk=chat.pk).title == "Keep me"


def test_rename_from_the_chat_page_updates_its_heading(claude_env):
    ada = make_user()
    chat = make_session(owner=ada, title="Draft")
    client = logged_in_client(user=ada)
    assert 'id="title-form"' in client.get(chat.get_absolute_url()).content.decode()
    html = client.post(
        f"/chat/{chat.id}/rename/", {"title": "Final"}, **HX, HTTP_HX_TARGET="title-form"
    ).content.decode()
    assert 'id="title-form"' in html
    assert '<h1 id="session-title" data-title="Final" hx-swap-oob="outerHTML">Final</h1>' in html
    # Without JavaScript: back to where the form was.
    response = client.post(f"/chat/{chat.id}/rename/", {"title": "Plain", "next": "/"})
    assert response.status_code == 302 and response.url == "/"
    assert (
        client.post(f"/chat/{chat.id}/rename/", {"title": "x", "next": "https://evil.example/"}).url
        == chat.get_absolute_url()
    )


def test_someone_elses_chat_cannot_be_renamed_or_deleted(claude_env):
    chat = make_session(owner=make_user(), title="Mine")
    intruder = logged_in_client(user=make_user())
    assert intruder.post(f"/chat/{chat.id}/rename/", {"title": "Hacked"}).status_code == 404
    assert intruder.get(f"/chat/{chat.id}/delete/").status_code == 404
    assert intruder.post(f"/chat/{chat.id}/delete/").status_code == 404
    assert Session.objects.get(pk=chat.pk).title == "Mine"


# ---------------------------------------------------------------------------------------
# Delete


@pytest.mark.django_db(transaction=True)
@pytest.mark.real_cli
async def test_delete_asks_first_then_removes_the_chat_and_its_cli_transcript(claude_env, rt):
    ada = await sync_to_async(make_user)()
    chat = await sync_to_async(make_session)(owner=ada)
    turn = await run_real_turn(rt, chat, "My name is Ada")
    assert turn.status == Turn.Status.DONE, turn.error
    await sync_to_async(_delete_asks_first_then_removes)(claude_env, ada, chat)


def _delete_asks_first_then_removes(claude_env, ada, chat) -> None:
    transcript = claude_env.transcript(chat)
    assert transcript.exists() and str(transcript) == Session.objects.get(pk=chat.pk).transcript_path
    sharing.create_share_link(session=chat, user=ada, expires_in=None)
    client = logged_in_client(user=ada)

    confirm = client.get(f"/chat/{chat.id}/delete/").content.decode()
    assert "Delete “My name is Ada”?" in confirm and "It cannot be undone." in confirm
    assert Session.objects.filter(pk=chat.pk).exists()

    response = client.post(f"/chat/{chat.id}/delete/", follow=True)
    assert "Deleted “My name is Ada”." in response.content.decode()
    assert not Session.objects.filter(pk=chat.pk).exists()
    assert not Turn.objects.filter(session_id=chat.pk).exists() and not ShareLink.objects.exists()
    assert not transcript.exists()


def test_delete_is_refused_while_a_message_runs(claude_env):
    ada = make_user()
    chat = make_session(owner=ada, title="Busy")
    add_turn(chat, prompt="slow 30", status=Turn.Status.RUNNING)
    client = logged_in_client(user=ada)
    assert "press Stop" in client.get(f"/chat/{chat.id}/delete/").content.decode()
    page = client.post(f"/chat/{chat.id}/delete/", follow=True).content.decode()
    assert "“Busy” has a message running or queued. Stop it" in page
    assert Session.objects.filter(pk=chat.pk).exists()


def test_delete_removes_only_files_named_after_the_chat(claude_env, tmp_path, rt):
    ada = make_user()
    chat = make_session(owner=ada)
    stranger = tmp_path / "important.txt"
    stranger.write_text("keep")
    Session.objects.filter(pk=chat.pk).update(transcript_path=str(stranger), archive_path=str(tmp_path))
    chats.delete_session(engine=rt, session=Session.objects.get(pk=chat.pk))
    assert stranger.read_text() == "keep" and tmp_path.is_dir()


def test_delete_removes_the_archive_copy_and_cli_side_folder(claude_env, tmp_path, rt):
    chat = make_session(owner=make_user())
    transcript = claude_env.transcript(chat)
    side = transcript.with_suffix("")
    (side / "subagents").mkdir(parents=True)
    (side / "subagents" / "agent-1.jsonl").write_text("{}")
    archive = tmp_path / f"{chat.id}.jsonl.gz"
    archive.write_bytes(b"gz")
    Session.objects.filter(pk=chat.pk).update(archive_path=str(archive))
    chats.delete_session(engine=rt, session=Session.objects.get(pk=chat.pk))
    assert not side.exists() and not archive.exists()


# ---------------------------------------------------------------------------------------
# Long chats


def _many_turns(session: Session, count: int) -> list[Turn]:
    start = timezone.now() - timedelta(days=1)
    made = Turn.objects.bulk_create(
        Turn(
            session=session,
            author=session.owner,
            prompt=f"question {n}",
            status=Turn.Status.DONE,
            created_at=start + timedelta(seconds=n),
        )
        for n in range(count)
    )
    Event.objects.bulk_create(Event(turn=turn, kind=Event.Kind.TEXT, text=f"answer {n}") for n, turn in enumerate(made))
    return list(Turn.objects.filter(session=session).order_by("created_at", "id"))


def test_a_chat_with_thousands_of_messages_opens_with_the_latest_and_loads_older_on_demand(
    claude_env, django_assert_max_num_queries
):
    ada = make_user()
    chat = make_session(owner=ada, title="Marathon")
    made = _many_turns(chat, 3000)
    client = logged_in_client(user=ada)

    started = time.monotonic()
    with django_assert_max_num_queries(12):
        page = client.get(chat.get_absolute_url()).content.decode()
    assert time.monotonic() - started < 2
    assert page.count('<article class="turn"') == selectors.RECENT_TURNS
    assert "question 2999" in page and "question 2950" in page and "question 2949" not in page
    assert page.index("question 2950") < page.index("question 2999")
    assert "Load older messages" in page and f"before={made[2950].id}" in page

    older = client.get(f"/chat/{chat.id}/older/", {"before": made[2950].id}, **HX).content.decode()
    assert older.count('<article class="turn"') == selectors.RECENT_TURNS
    assert "question 2900" in older and "question 2949" in older and "question 2950" not in older
    assert older.index('id="older-turns"') < older.index("question 2900")
    assert f"before={made[2900].id}" in older

    oldest = client.get(f"/chat/{chat.id}/older/", {"before": made[30].id}, **HX).content.decode()
    assert oldest.count('<article class="turn"') == 30 and "Load older messages" not in oldest


def test_a_short_chat_has_no_older_button_and_bad_anchors_are_not_found(claude_env):
    ada = make_user()
    chat = make_session(owner=ada)
    made = _many_turns(chat, 3)
    other = _many_turns(make_session(owner=ada), 1)
    client = logged_in_client(user=ada)
    assert "Load older messages" not in client.get(chat.get_absolute_url()).content.decode()
    assert client.get(f"/chat/{chat.id}/older/", {"before": "abc"}).status_code == 404
    assert client.get(f"/chat/{chat.id}/older/", {"before": other[0].id}).status_code == 404
    assert logged_in_client(user=make_user()).get(f"/chat/{chat.id}/older/", {"before": made[2].id}).status_code == 404


def test_a_missing_or_foreign_chat_answers_a_404_page_that_says_what_to_do():
    owner, other = make_user(), make_user()
    chat = make_session(owner=owner)
    page = logged_in_client(user=other).get(chat.get_absolute_url())
    assert page.status_code == 404
    assert "Back to your chats" in page.content.decode()


def test_new_chat_is_a_page_with_a_box_and_makes_no_chat_until_a_message_is_sent(claude_env):
    ada = make_user()
    client = logged_in_client(user=ada)
    page = client.get("/chat/new/").content.decode()
    assert 'id="message"' in page and 'enctype="multipart/form-data"' in page
    assert not Session.objects.filter(owner=ada).exists()
    refused = client.post("/chat/new/", {"message": "   "})
    assert refused.status_code == 400 and "Type a message first." in refused.content.decode()
    assert not Session.objects.filter(owner=ada).exists()


def test_the_sidebar_lists_own_chats_but_not_task_sessions(claude_env):
    ada = make_user()
    make_session(owner=ada, title="Visible chat")
    task_session = make_session(owner=ada, title="A task's session")
    Session.objects.filter(pk=task_session.pk).update(kind=Session.Kind.TASK)
    make_session(owner=make_user(), title="Someone else's")
    page = logged_in_client(user=ada).get("/settings/").content.decode()
    assert "Visible chat" in page and "A task's session" not in page and "Someone else" not in page


def test_attach_saves_files_in_the_chats_folder_and_answers_chips_naming_them(claude_env, settings):
    from django.core.files.uploadedfile import SimpleUploadedFile

    ada = make_user()
    chat = make_session(owner=ada)
    client = logged_in_client(user=ada)
    answer = client.post(f"/chat/{chat.id}/attach/", {"files": [SimpleUploadedFile("../../x y.txt", b"hello")]})
    assert answer.status_code == 200
    assert 'name="attachments" value="attachments/x-y.txt"' in answer.content.decode()
    assert (claude_env.workdir / str(ada.pk) / "attachments" / "x-y.txt").read_bytes() == b"hello"
    settings.CLAUDE_MAX_ATTACHMENT_MB = 0.001
    big = client.post(f"/chat/{chat.id}/attach/", {"files": [SimpleUploadedFile("big.bin", b"x" * 5000)]})
    assert big.status_code == 400 and "limit for an attachment" in big.content.decode()
    settings.CLAUDE_MAX_ATTACHMENT_MB = 10
    settings.CLAUDE_MAX_ATTACHMENTS_MB_PER_MEMBER = 0.001
    full = client.post(f"/chat/{chat.id}/attach/", {"files": [SimpleUploadedFile("more.bin", b"x" * 2000)]})
    assert full.status_code == 400
    assert "your attachments already take 1 KB of the 1 KB a member may store" in full.content.decode()
    assert "Delete chats you no longer need" in full.content.decode()
    other = logged_in_client(user=make_user())
    assert other.post(f"/chat/{chat.id}/attach/", {"files": [SimpleUploadedFile("a.txt", b"x")]}).status_code == 404


def test_the_model_of_a_chat_is_picked_from_the_offered_ones(claude_env, settings):
    settings.CLAUDE_MODELS = ["sonnet", "opus"]
    ada = make_user()
    chat = make_session(owner=ada)
    assert chat.model == "sonnet"
    client = logged_in_client(user=ada)
    assert "The next messages use opus." in client.post(f"/chat/{chat.id}/model/", {"model": "opus"}).content.decode()
    assert Session.objects.get(pk=chat.pk).model == "opus"
    assert (
        "is not a model this server offers" in client.post(f"/chat/{chat.id}/model/", {"model": "x"}).content.decode()
    )
    assert Session.objects.get(pk=chat.pk).model == "opus"


def test_an_image_too_large_for_the_model_is_attached_as_a_file_and_the_chip_says_so(claude_env, settings):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from chat.services.attachments import MAX_IMAGE_BYTES

    settings.CLAUDE_MAX_ATTACHMENT_MB = 20
    ada = make_user()
    chat = make_session(owner=ada)
    client = logged_in_client(user=ada)
    small = client.post(f"/chat/{chat.id}/attach/", {"files": [SimpleUploadedFile("dot.png", b"\x89PNG small")]})
    assert "Image: <code>dot.png</code>" in small.content.decode() and "not the picture" not in small.content.decode()
    big = client.post(
        f"/chat/{chat.id}/attach/", {"files": [SimpleUploadedFile("huge.png", b"x" * (MAX_IMAGE_BYTES + 1))]}
    )
    html = big.content.decode()
    assert big.status_code == 200 and "File: <code>huge.png</code>" in html
    assert "(over 5 MB: the model gets its name, not the picture; send a smaller image to have it looked at)" in html


@pytest.mark.django_db(transaction=True)
@pytest.mark.real_cli
async def test_delete_removes_links_the_agent_made_and_nothing_they_point_to(claude_env, server_files, rt):
    ada = await sync_to_async(make_user)()
    chat = await sync_to_async(make_session)(owner=ada)
    transcript = Path(chat.transcript_path)
    side = transcript.with_suffix("")  # where the CLI keeps a session's subagents and tool results
    turn = await run_real_turn(
        rt,
        chat,
        f"run: ln -sf {server_files.key} {transcript}; ln -s {server_files.folder} {side}; "
        f"ln -s {server_files.db} {transcript.parent}/db; ln -s {server_files.folder} {chat.config_dir}/data",
    )
    assert turn.status == Turn.Status.DONE, turn.error
    assert transcript.is_symlink() and side.is_symlink()
    in_data_folder = sorted(server_files.folder.iterdir())

    response = await sync_to_async(lambda: logged_in_client(user=ada).post(f"/chat/{chat.id}/delete/", follow=True))()

    assert "Deleted" in response.content.decode() and not await Session.objects.filter(pk=chat.pk).aexists()
    assert not os.path.lexists(chat.config_dir)
    assert server_files.untouched() and sorted(server_files.folder.iterdir()) == in_data_folder
