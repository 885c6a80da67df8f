"""Every chat page shows the true state, live: the model picker, the sidebar, a cancelled or denied
call, the cards around a permission prompt, and no fragment sent to an element the page lacks.

Each test names what a person saw wrong before; the ``page`` fixture fails any test whose pages
logged a console error, a Content-Security-Policy violation or an htmx error.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.test_chat import log_in, open_new_chat

pytestmark = [pytest.mark.browser, pytest.mark.real_cli]

SMALL, LARGE = "claude-stand-in-small", "claude-stand-in-large"


def member(live_app, page: Page, name: str) -> int:
    user_id = live_app.create_user(username=name, password=f"pw-{name}-123")
    log_in(page, live_app.base_url, name, f"pw-{name}-123")
    return user_id


def finished(turn) -> None:
    expect(turn.locator(".turn-status .stats")).to_be_visible(timeout=20_000)


def second_tab(page: Page) -> Page:
    other = page.context.new_page()
    other.goto(page.url)
    expect(other.locator("body[data-ws=open]")).to_have_count(1)
    return other


def test_the_model_picker_shows_the_model_the_chat_runs_with_after_a_turn(live_app, page):
    member(live_app, page, "nell")
    open_new_chat(page, "which model")
    turns = page.locator("article.turn")
    expect(turns.nth(0)).to_contain_text(f"the model {SMALL}")
    other = second_tab(page)

    page.get_by_label("Model").select_option(LARGE)
    expect(page.locator("#flash")).to_have_text(f"The next messages use {LARGE}.")
    page.get_by_label("Message").fill("which model")
    page.get_by_label("Message").press("Enter")
    expect(turns.nth(1)).to_contain_text(f"the model {LARGE}", timeout=20_000)
    finished(turns.nth(1))
    # Before, sending reset the whole form: the picker went back to the model the page opened with.
    expect(page.get_by_label("Model")).to_have_value(LARGE)
    expect(other.get_by_label("Model")).to_have_value(LARGE)
    page.reload()
    expect(page.get_by_label("Model")).to_have_value(LARGE)


def dot_of(link) -> str:
    """What the sidebar shows before a chat's title: a dot while a turn runs or waits."""
    return link.evaluate("el => getComputedStyle(el, '::before').content")


def test_the_sidebar_drops_the_running_dot_when_the_first_turn_ends_and_follows_a_rename(live_app, page):
    member(live_app, page, "olga")
    open_new_chat(page, "slow 6")
    recent = page.locator(".recent").get_by_role("link", name="slow 6")
    expect(recent).to_have_attribute("aria-current", "page")
    expect(recent).to_have_class(re.compile(r"\bstatus-(running|queued)\b"))
    assert dot_of(recent) == '"● "'
    finished(page.locator("article.turn").first)
    expect(recent).to_have_class(re.compile(r"\bstatus-idle\b"))
    assert dot_of(recent) == "none"
    other = second_tab(page)
    board = page.context.new_page()
    board.goto(live_app.base_url + "/tasks/")
    expect(board.locator("body[data-ws=open]")).to_have_count(1)

    page.get_by_text("Rename", exact=True).click()
    page.get_by_label("Title").fill("Quarterly plan")
    page.get_by_role("button", name="Save").click()
    for tab in (page, other, board):
        expect(tab.locator(".recent").get_by_role("link", name="Quarterly plan")).to_be_visible()
        expect(tab.locator(".recent")).not_to_contain_text("slow 6")
    # A turn in this chat shows on the board's sidebar too.
    page.get_by_label("Message").fill("slow 3")
    page.get_by_label("Message").press("Enter")
    busy = board.locator(".recent").get_by_role("link", name="Quarterly plan")
    expect(busy).to_have_class(re.compile(r"\bstatus-(running|queued)\b"))
    finished(page.locator("article.turn").nth(1))
    expect(busy).to_have_class(re.compile(r"\bstatus-idle\b"))


def test_a_cancelled_message_says_one_thing_and_no_tab_gets_a_fragment_it_cannot_place(live_app, page):
    member(live_app, page, "pam")
    open_new_chat(page, "slow 20")
    turns = page.locator("article.turn")
    expect(turns.nth(0).locator(".event.text")).to_contain_text("word2", timeout=20_000)
    other = second_tab(page)
    page.get_by_label("Message").fill("echo: later")
    page.get_by_label("Message").press("Enter")
    queued = turns.nth(1).locator(".turn-status")
    expect(queued).to_contain_text("Queued")
    expect(other.locator("article.turn").nth(1).locator(".turn-status")).to_contain_text("Queued")

    queued.get_by_role("button", name="Cancel").click()
    for tab in (page, other):
        status = tab.locator("article.turn").nth(1).locator(".turn-status")
        expect(status).to_have_text("Cancelled before it ran.")
    page.keyboard.press("Escape")
    for tab in (page, other):
        expect(tab.locator("article.turn").nth(0).locator(".turn-status")).to_contain_text("Stopped.")
        expect(tab.get_by_role("button", name="Stop")).to_be_disabled()
    # The page's own problems (htmx:oobErrorNoTarget included) fail the test in the fixture.


def test_a_tool_card_shows_once_around_its_prompt_and_a_denial_is_said_once(live_app, page):
    member(live_app, page, "quin")
    open_new_chat(page, "echo: ready")
    finished(page.locator("article.turn").first)
    page.get_by_label("Message").fill("write todo.txt: buy milk")
    page.get_by_label("Message").press("Enter")
    turn = page.locator("article.turn").nth(1)
    prompt = turn.locator(".event.permission")
    expect(prompt.get_by_role("button", name="Deny")).to_be_visible()
    expect(turn.locator(".tool-card:visible")).to_have_count(1)
    expect(turn.locator(".tool-card:visible .tool-subject")).to_contain_text("todo.txt")

    prompt.get_by_role("button", name="Deny").click()
    expect(prompt).to_contain_text("Denied by quin.")
    finished(turn)
    expect(turn.locator(".tool-card:visible")).to_have_count(1)
    # The app says it once; the model's own answer may say it again in its words.
    said = [text for text in turn.locator(".event:not(.text):visible").all_inner_texts() if "denied" in text.lower()]
    assert len(said) == 1, said
    page.reload()
    expect(turn.locator(".tool-card:visible")).to_have_count(1)
    said = [text for text in turn.locator(".event:not(.text):visible").all_inner_texts() if "denied" in text.lower()]
    assert len(said) == 1, said


def test_restoring_an_archived_chat_sends_nothing_the_page_cannot_place(live_app, page):
    member(live_app, page, "rosa")
    open_new_chat(page, "My name is Rosa")
    finished(page.locator("article.turn").first)
    chat_id = re.search(r"/chat/([0-9a-f-]{36})/$", page.url).group(1)
    live_app.manage(
        "shell",
        "-c",
        "import os; from chat.models import Session; from chat.services.archive import archive_session; "
        "from runtime import NoEngine; archive_session(session=Session.objects.get(pk=os.environ['CHAT']), "
        "engine=NoEngine())",
        extra_env={"CHAT": chat_id},
    )
    page.reload()
    expect(page.locator("body[data-ws=open]")).to_have_count(1)
    expect(page.get_by_text("This chat is archived: it is read-only.")).to_be_visible()
    page.get_by_role("button", name="Restore").click()
    expect(page.get_by_text("Restored: the chat continues with its memory.")).to_be_visible()
    expect(page.locator("body[data-ws=open]")).to_have_count(1)
    page.get_by_label("Message").fill("What is my name?")
    page.get_by_label("Message").press("Enter")
    expect(page.locator("article.turn").nth(1)).to_contain_text("Your name is Rosa.")


@pytest.mark.parametrize(
    ("scheme", "viewport"),
    [("light", {"width": 1280, "height": 800}), ("dark", {"width": 375, "height": 812})],
    ids=["desktop-light", "phone-dark"],
)
def test_attach_send_rename_search_and_every_page_keep_the_content_security_policy(
    live_app, new_context, scheme, viewport
):
    """No inline style nor script anywhere a member goes (the fixture fails on any CSP violation)."""
    page = new_context(color_scheme=scheme, viewport=viewport).new_page()
    name = f"walker{scheme}"
    member(live_app, page, name)
    page.goto(live_app.base_url + "/chat/new/")
    page.locator("#attach-files").set_input_files({"name": "a.txt", "mimeType": "text/plain", "buffer": b"a\n"})
    expect(page.locator("#attached")).to_contain_text("a.txt")
    page.get_by_label("Message").fill("echo: walking")
    page.get_by_label("Message").press("Enter")
    expect(page).to_have_url(re.compile(r"/chat/[0-9a-f-]{36}/$"))
    expect(page.locator("body[data-ws=open]")).to_have_count(1)
    finished(page.locator("article.turn").first)
    chat_url = page.url

    page.locator("#attach-files").set_input_files({"name": "b.txt", "mimeType": "text/plain", "buffer": b"b\n"})
    expect(page.locator("#attached")).to_contain_text("b.txt")
    page.get_by_label("Message").fill("echo: sent with a file")
    page.get_by_role("button", name="Send").click()
    finished(page.locator("article.turn").nth(1))
    page.get_by_text("Rename", exact=True).click()
    page.get_by_label("Title").fill("A walk")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("heading", name="A walk")).to_be_visible()

    page.goto(live_app.base_url + "/")
    page.get_by_label("Search chats").fill("walking")
    expect(page.locator("#chat-list")).to_contain_text("1 chat matches")
    page.goto(live_app.base_url + "/tasks/")
    expect(page.locator("body[data-ws=open]")).to_have_count(1)
    page.get_by_label("What should Claude Code do?").fill("echo: a task")
    page.get_by_role("button", name="Start task").click()
    expect(page).to_have_url(re.compile(r"/tasks/\d+/$"))
    expect(page.locator("#task-status")).to_have_text(re.compile("Completed"), timeout=30_000)
    for path in (chat_url, live_app.base_url + "/settings/", live_app.base_url + "/chat/new/"):
        page.goto(path)
        expect(page.locator("main")).to_be_visible()
