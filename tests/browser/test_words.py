"""What the pages say is true: the demo banner, what a task may do, the prompts, the board's words."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser.test_chat import log_in, open_new_chat
from tests.browser.test_tasks import RUN_TIMEOUT, open_board, start_task

pytestmark = [pytest.mark.browser, pytest.mark.real_cli]

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_demo_banner_says_how_to_use_claude_and_nothing_untrue(demo_app, page):
    demo_app.create_user(username="dina", password="pw-dina-123", staff=True)
    page.goto(demo_app.base_url + "/accounts/login/")
    banner = page.get_by_role("note")
    expect(banner).to_contain_text("Demo mode")
    words = banner.text_content()
    # A login stored by `claude /login` is not used (no agent sees the server's home): the banner
    # names only what works.
    assert "/login" not in words, words
    assert "ANTHROPIC_API_KEY" in words and "CLAUDE_CODE_OAUTH_TOKEN" in words and "claude setup-token" in words

    log_in(page, demo_app.base_url, "dina", "pw-dina-123")
    expect(page.get_by_role("note")).to_contain_text("Demo mode")
    # The admin says it too.
    page.goto(demo_app.base_url + "/admin/")
    expect(page.get_by_role("note")).to_contain_text("Demo mode")
    assert "/login" not in page.get_by_role("note").text_content()


def test_the_new_task_form_says_what_the_settings_in_force_allow(live_app, page):
    open_board(live_app, page, "wanda")
    page.get_by_role("link", name="New task").click()
    form = page.locator("#new-task-form")
    words = " ".join(form.text_content().split())
    # The live app runs with the default settings: tasks in the sandbox, acceptEdits, these tools.
    assert "Read, Edit, Write, MultiEdit, NotebookEdit, Glob, Grep, LS, TodoWrite" in words, words
    assert "acceptEdits" in words
    assert "asks on the task's page" in words
    assert "inside its sandbox" in words and "egress proxy" in words
    assert "the server's user can reach" not in words and "outside the worktree through the shell" not in words


def test_a_tasks_prompt_offers_always_allow_for_the_task_not_a_chat(live_app, page):
    open_board(live_app, page, "tasha")
    # Not among the task's allowed tools, and not a command the CLI lets through by itself: it asks.
    task_id = start_task(page, title="Sum", prompt="run: python3 -c 'print(6 * 7)'")
    prompt = page.locator("#turns .event.permission")
    always = prompt.get_by_role("button", name="Always allow Bash for this task")
    expect(always).to_be_visible(timeout=RUN_TIMEOUT)
    expect(page.locator("main")).not_to_contain_text("in this chat")
    always.click()
    expect(prompt).to_contain_text("Always allowed for this task by tasha.")
    # It ran a command and changed no file: the page says so (nothing to merge).
    expect(page.locator("#task-status")).to_have_text("Completed: nothing changed", timeout=RUN_TIMEOUT)
    expect(page.locator("#turns .tool-result")).to_contain_text("42")
    expect(page.locator("main")).not_to_contain_text("in this chat")
    assert task_id


def demo_phrases() -> list[str]:
    """The README's demo phrases that it says ask for permission (writes, edits, commands)."""
    text = README.read_text()
    demo = text[text.index("### Demo mode") :]
    demo = demo[: demo.index("\n## ")]
    return [p for p in re.findall(r"`([^`]+)`", demo) if p.startswith(("write ", "run:", "edit "))]


def test_the_readmes_demo_phrases_that_ask_for_permission_do_ask(live_app, page):
    phrases = demo_phrases()
    assert any(p.startswith("run:") for p in phrases), phrases
    live_app.create_user(username="remy", password="pw-remy-123")
    log_in(page, live_app.base_url, "remy", "pw-remy-123")
    open_new_chat(page, "echo: ready")
    turns = page.locator("article.turn")
    expect(turns.nth(0).locator(".turn-status .stats")).to_be_visible()
    for number, phrase in enumerate(phrases, start=1):
        box = page.get_by_label("Message")
        box.fill(phrase)
        box.press("Enter")
        prompt = turns.nth(number).locator(".event.permission")
        expect(prompt).to_contain_text("Claude Code asks to use", timeout=RUN_TIMEOUT)
        prompt.get_by_role("button", name="Allow", exact=True).click()
        expect(turns.nth(number).locator(".turn-status .stats")).to_be_visible(timeout=RUN_TIMEOUT)


def test_the_filter_tabs_and_the_board_speak_one_vocabulary(live_app, page):
    open_board(live_app, page, "vera")
    columns = [
        page.locator(".board .column").nth(i).get_attribute("aria-label")
        for i in range(page.locator(".board .column").count())
    ]
    tabs = page.get_by_role("navigation", name="Filter by status").get_by_role("link")
    assert tabs.all_text_contents() == ["All", *columns]
    for label in columns:
        page.get_by_role("navigation", name="Filter by status").get_by_role("link", name=label, exact=True).click()
        expect(page.get_by_role("heading", name=label, exact=True)).to_be_visible()
        expect(page.get_by_role("link", name=label, exact=True)).to_have_attribute("aria-current", "page")


def test_a_wrong_password_is_said_once(live_app, page):
    live_app.create_user(username="wes", password="pw-wes-123")
    page.goto(live_app.base_url + "/accounts/login/")
    page.get_by_label("Username").fill("wes")
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Log in").click()
    main = page.locator("main")
    expect(main.get_by_role("alert")).to_have_text("That username and password did not match. Try again.")
    expect(main.locator(".errorlist")).to_have_count(0)
    expect(main).not_to_contain_text("Please enter a correct")
    # A right password then logs in (and resets the count of wrong ones).
    page.get_by_label("Password").fill("pw-wes-123")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Your chats")).to_be_visible()
