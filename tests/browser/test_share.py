"""Sharing a chat in a real browser, against the real server and CLI: share, read anonymously, revoke."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.test_chat import log_in, open_new_chat

pytestmark = [pytest.mark.browser, pytest.mark.real_cli]


def test_share_a_chat_read_it_without_login_then_revoke_it(live_app, page: Page, new_context, problems):
    live_app.create_user(username="sharer", password="pw-sharer-123")
    log_in(page, live_app.base_url, "sharer", "pw-sharer-123")
    open_new_chat(page, "write shared-notes.txt: <b>shared</b> hello")
    turn = page.locator("article.turn").first
    turn.get_by_role("button", name="Allow", exact=True).click()
    expect(turn).to_contain_text("File created successfully")

    page.get_by_text("Rename", exact=True).click()
    # The first message named the chat after the page loaded: the form starts from that name.
    expect(page.get_by_label("Title")).to_have_value("write shared-notes.txt: <b>shared</b> hello")
    page.get_by_label("Title").fill("Release notes")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("heading", name="Release notes")).to_be_visible()

    page.get_by_role("link", name="Share", exact=True).click()
    expect(page.get_by_role("heading", name="Share “Release notes”")).to_be_visible()
    page.get_by_label("Link expires after").select_option(label="1 day")
    page.get_by_role("button", name="Create link").click()
    field = page.get_by_label(re.compile("Your new link"))
    expect(field).to_have_value(re.compile(r"^http://127\.0\.0\.1:\d+/share/[A-Za-z0-9_-]{43}/$"))
    link = field.input_value()
    page.get_by_role("button", name="Copy").click()
    expect(page.get_by_role("cell", name="Live")).to_be_visible()

    page.goto(live_app.base_url + "/")
    row = page.locator("li.chat-row", has_text="Release notes")
    expect(row.get_by_role("link", name="Shared")).to_be_visible()

    # Someone else, not logged in, opens the link.
    reader = new_context().new_page()
    sockets: list[str] = []
    reader.on("websocket", lambda ws: sockets.append(ws.url))
    reader.goto(link)
    expect(reader.get_by_role("heading", name="Release notes")).to_be_visible()
    shared_turn = reader.locator("article.turn").first
    expect(shared_turn.locator(".msg.user")).to_contain_text("write shared-notes.txt: <b>shared</b> hello")
    expect(shared_turn).to_contain_text("File created successfully at: shared-notes.txt")
    expect(reader.get_by_label("Message")).to_have_count(0)
    expect(reader.get_by_role("button", name="Stop")).to_have_count(0)
    html = reader.content()
    assert str(live_app.data_dir) not in html and "/work/" not in html
    # Its one socket is the link's own (it follows this chat, nothing else).
    expect(reader.locator("body[data-ws=open]")).to_have_count(1)
    assert [url.split("/ws/", 1)[1].split("?")[0] for url in sockets] == [f"share/{link.rsplit('/', 2)[1]}/"]

    # The owner revokes it from the list's "Shared" badge: the reader's reload finds nothing.
    row.get_by_role("link", name="Shared").click()
    page.get_by_role("button", name="Revoke").click()
    expect(page.get_by_role("status")).to_contain_text("Revoked: that link now answers “not found”.")
    expect(page.get_by_role("cell", name="Revoked")).to_be_visible()
    problems.allow(r"Failed to load resource: the server responded with a status of 404")  # the link's page now
    expect(reader.locator("#connection")).to_have_text(
        "This link no longer works: its owner revoked it, or it expired."
    )
    response = reader.reload()
    assert response is not None and response.status == 404
    expect(reader.get_by_role("heading", name="This link does not work")).to_be_visible()
    expect(reader.get_by_text("Release notes")).to_have_count(0)
    reader.context.close()


def test_long_chat_loads_older_messages_for_owner_and_reader(live_app, page: Page, new_context):
    live_app.create_user(username="longtalker", password="pw-long-123")
    code = (
        "from datetime import timedelta; from django.utils import timezone; "
        "from django.contrib.auth import get_user_model; from chat.services import chats, sharing; from chat.models import Turn; "
        "u = get_user_model().objects.get(username='longtalker'); s = chats.create_session(owner=u, title='Marathon'); "
        "t0 = timezone.now() - timedelta(hours=1); "
        "Turn.objects.bulk_create(Turn(session=s, author=u, prompt=f'question {n}', status='done', "
        "created_at=t0 + timedelta(seconds=n)) for n in range(120)); "
        "print(sharing.create_share_link(session=s, user=u, expires_in=None)[1])"
    )
    token = live_app.manage("shell", "-c", code).strip().splitlines()[-1]
    log_in(page, live_app.base_url, "longtalker", "pw-long-123")
    page.locator("#chat-list").get_by_role("link", name="Marathon", exact=True).click()
    shown = page.locator("article.turn")
    expect(shown).to_have_count(50)
    # The turns are in the HTML before the page's scripts run; a click before then does nothing.
    # The live connection opening is the sign that they have.
    expect(page.locator("body[data-ws=open]")).to_have_count(1)
    expect(shown.first).to_contain_text("question 70")
    # The socket's first message puts the latest turns in again: load older ones after it.
    expect(page.locator("body[data-ws=open]")).to_have_count(1)

    page.get_by_role("button", name="Load older messages").click()
    expect(shown).to_have_count(100)
    expect(shown.first).to_contain_text("question 20")
    page.get_by_role("button", name="Load older messages").click()
    expect(shown).to_have_count(120)
    expect(shown.first).to_contain_text("question 0")
    expect(page.get_by_role("button", name="Load older messages")).to_have_count(0)
    # In order: the older ones went in before the first turn shown.
    texts = shown.locator(".msg.user .body").all_inner_texts()
    assert texts == [f"question {n}" for n in range(120)]

    reader = new_context().new_page()
    reader.goto(f"{live_app.base_url}/share/{token}/")
    read = reader.locator("article.turn")
    expect(read).to_have_count(50)
    reader.get_by_role("button", name="Load older messages").click()
    expect(read).to_have_count(100)
    expect(read.first).to_contain_text("question 20")
    reader.context.close()


def test_a_shared_answer_shows_rendered_markdown_and_its_html_stays_inert(live_app, page: Page, new_context):
    live_app.create_user(username="marta", password="pw-marta-123")
    log_in(page, live_app.base_url, "marta", "pw-marta-123")
    open_new_chat(page, "markdown 0.5")
    expect(page.locator("article.turn .turn-status .stats")).to_be_visible(timeout=20_000)
    page.get_by_role("link", name="Share").click()
    page.get_by_role("button", name="Create link").click()
    link = page.get_by_label(re.compile("Your new link")).input_value()

    reader_context = new_context()
    reader_context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_app.base_url)
    reader = reader_context.new_page()
    reader.goto(link)
    answer = reader.locator("article.turn .event.text")
    expect(answer.get_by_role("heading", name="A plan")).to_be_visible()
    expect(answer.locator("strong")).to_have_text("bold text")
    expect(answer).to_contain_text(
        "Raw HTML stays text: <script>alert('x')</script> <img src=x onerror=alert(1)> done."
    )
    expect(answer.locator("script, img, [onerror]")).to_have_count(0)
    code = answer.locator(".code-block")
    expect(code.locator(".code-lang")).to_have_text("python")
    code.get_by_role("button", name="Copy this code").click()
    expect(code.get_by_role("button", name="Copy this code")).to_have_text("Copied")
    assert reader.evaluate("navigator.clipboard.readText()").startswith("def greet(name):")
    reader_context.close()


def test_a_share_links_page_follows_the_chat_live_and_only_that_chat(live_app, page: Page, new_context):
    live_app.create_user(username="liveshare", password="pw-liveshare-123")
    log_in(page, live_app.base_url, "liveshare", "pw-liveshare-123")
    open_new_chat(page, "echo: first words")
    turns = page.locator("article.turn")
    expect(turns.nth(0).locator(".turn-status .stats")).to_be_visible()
    chat_url = page.url
    page.get_by_role("link", name="Share", exact=True).click()
    page.get_by_role("button", name="Create link").click()
    link = page.get_by_label(re.compile("Your new link")).input_value()

    reader = new_context().new_page()
    reader.goto(link)
    expect(reader.locator("body[data-ws=open]")).to_have_count(1)
    read = reader.locator("article.turn")
    expect(read).to_have_count(1)

    # A new turn, as it runs and ends, without a reload.
    page.goto(chat_url)
    expect(page.locator("body[data-ws=open]")).to_have_count(1)
    page.get_by_label("Message").fill("echo: second words")
    page.get_by_label("Message").press("Enter")
    expect(read.nth(1)).to_contain_text("second words")
    expect(read.nth(1).locator(".turn-status .stats")).to_be_visible(timeout=20_000)

    # A prompt appears for the reader without its buttons, and with the server's paths hidden.
    page.get_by_label("Message").fill("write live-notes.txt: hello")
    page.get_by_label("Message").press("Enter")
    asked = read.nth(2).locator(".event.permission")
    expect(asked).to_contain_text("Claude Code asks to use Write")
    expect(asked).to_contain_text("Waiting for the chat's owner to answer.")
    expect(reader.get_by_role("button")).to_have_count(0)
    expect(read.nth(2).locator(".turn-status")).to_contain_text("Waiting for an answer")
    page.locator("article.turn").nth(2).get_by_role("button", name="Allow", exact=True).click()
    expect(asked).to_contain_text("Allowed by liveshare.")
    expect(read.nth(2)).to_contain_text("File created successfully")
    expect(read.nth(2).locator(".turn-status .stats")).to_be_visible(timeout=20_000)
    assert str(live_app.data_dir) not in reader.content()
    expect(reader.get_by_role("button")).to_have_count(0)
    expect(reader.get_by_label("Message")).to_have_count(0)

    # A rename shows; another chat of the same owner never reaches the reader.
    page.get_by_text("Rename", exact=True).click()
    page.get_by_label("Title").fill("Live notes")
    page.get_by_role("button", name="Save").click()
    expect(reader.get_by_role("heading", name="Live notes")).to_be_visible()
    open_new_chat(page, "echo: private words")
    expect(page.locator("article.turn .turn-status .stats")).to_be_visible()
    page.goto(chat_url)
    page.get_by_label("Message").fill("echo: last words")
    page.get_by_label("Message").press("Enter")
    expect(read.nth(3)).to_contain_text("last words")
    expect(read).to_have_count(4)
    assert "private words" not in reader.content()
