"""Project memory in a real browser, against the real server, CLI and sandbox: a member writes their
folder's CLAUDE.md from Settings (the preview renders it as typed), a new chat's agent is told it,
and the chat's page lists the memory file it read, linked to the editor."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.test_chat import log_in, open_new_chat

pytestmark = [pytest.mark.browser, pytest.mark.real_cli]


def test_memory_written_from_settings_reaches_a_new_chat_which_lists_it(live_app, page):
    mira = live_app.create_user(username="memory-mira", password="pw-mira-123")
    log_in(page, live_app.base_url, "memory-mira", "pw-mira-123")
    page.get_by_role("link", name="Settings").first.click()
    page.locator(".memory-projects").get_by_role("link", name="Your own folder").click()
    expect(page.get_by_role("heading", name="Project memory")).to_be_visible()
    expect(page.locator("h2")).to_contain_text("not there yet")

    box = page.get_by_label(re.compile("Write the project's memory"))
    box.fill("# Team rules\n\nThe code word is **BROWSER-MARK**.\n")
    # The preview follows the text as it is typed, rendered as the Files page renders Markdown.
    expect(page.locator("#memory-preview strong")).to_have_text("BROWSER-MARK")
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".messages")).to_contain_text("Saved CLAUDE.md.")
    expect(page.locator("#memory-preview h1")).to_have_text("Team rules")
    assert (
        live_app.own_folder(mira) / "CLAUDE.md"
    ).read_text() == "# Team rules\n\nThe code word is **BROWSER-MARK**.\n"

    open_new_chat(page, "told: BROWSER-MARK")
    expect(page.locator("article.turn").first).to_contain_text("I was told BROWSER-MARK.")
    expect(page.locator("article.turn").first).to_contain_text("Memory read: CLAUDE.md (49 B)")
    note = page.locator("#memory-note")
    expect(note).to_contain_text("Memory: CLAUDE.md (49 B)")
    expect(note).to_contain_text("an edit reaches this chat when its process next starts")

    # The file it names opens the editor, with the chat as the way back.
    note.get_by_role("link", name="CLAUDE.md").click()
    expect(page.locator("#memory-text")).to_have_value(re.compile("BROWSER-MARK"))
    expect(page.get_by_role("link", name=re.compile("Chat:"))).to_be_visible()
    # It fits a phone.
    page.set_viewport_size({"width": 375, "height": 700})
    page.reload()
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
