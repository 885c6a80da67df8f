"""The workspace in a real browser, against the real server, CLI and sandbox: a file the agent wrote,
opened, edited and saved, the open folder following the agent; a terminal that runs ls and git
status, resizes, survives a reload, and sees nothing of the server."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.test_chat import log_in, open_new_chat

pytestmark = [pytest.mark.browser, pytest.mark.real_cli]


def _allow(page: Page, turn: int) -> None:
    prompt = page.locator("article.turn").nth(turn).locator(".event.permission")
    prompt.get_by_role("button", name="Allow", exact=True).click()
    expect(page.locator("article.turn").nth(turn)).to_contain_text("File created successfully")


def test_a_file_the_agent_wrote_is_opened_edited_and_saved_and_the_folder_follows(live_app, page, new_context):
    wren = live_app.create_user(username="wren", password="pw-wren-123")
    log_in(page, live_app.base_url, "wren", "pw-wren-123")
    open_new_chat(page, "write x.txt: from the agent")
    _allow(page, 0)
    chat_url = page.url

    page.get_by_role("link", name="Files", exact=True).click()
    tree = page.locator(".ws-tree")
    tree.get_by_role("link", name="x.txt").click()
    expect(page.locator(".ws-code")).to_contain_text("from the agent")
    page.locator(".ws-edit summary").click()
    page.get_by_label("Text of x.txt").fill("edited in the browser\n")
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".messages")).to_contain_text("Saved x.txt.")
    expect(page.locator(".ws-code")).to_contain_text("edited in the browser")
    assert (live_app.own_folder(wren) / "x.txt").read_text() == "edited in the browser\n"

    # A file dropped on the folder's pane is uploaded into it.
    dropped = page.evaluate_handle(
        """() => { const data = new DataTransfer();
                   data.items.add(new File(["dropped text"], "dropped.txt", {type: "text/plain"})); return data; }"""
    )
    tree.dispatch_event("drop", {"dataTransfer": dropped})
    expect(page.locator(".messages")).to_contain_text("Uploaded 1 file.")
    assert (live_app.own_folder(wren) / "dropped.txt").read_text() == "dropped text"

    # The open folder follows the agent: a file it writes now shows without a reload.
    chat = page.context.new_page()
    chat.goto(chat_url)
    expect(chat.locator("body[data-ws=open]")).to_have_count(1)
    chat.get_by_label("Message").fill("write later.txt: written while Files was open")
    chat.get_by_label("Message").press("Enter")
    _allow(chat, 1)
    expect(tree.get_by_role("link", name="later.txt")).to_be_visible()

    # Each of the workspace's pages fits a phone.
    files_url = page.url.split("?")[0]
    page.set_viewport_size({"width": 375, "height": 700})
    for url in (files_url + "?open=x.txt", files_url.replace("/files/", "/changes/") + "?diff=x.txt"):
        page.goto(url)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, f"{url} is {width} px wide"


def _screen(page: Page):
    return page.locator(".xterm-rows")


def _run(page: Page, command: str) -> None:
    page.locator(".xterm").click()
    page.keyboard.type(command)
    page.keyboard.press("Enter")


def test_a_terminal_runs_ls_and_git_status_resizes_survives_a_reload_and_sees_nothing_else(live_app, page):
    live_app.create_user(username="terminal-tess", password="pw-tess-123")
    other = live_app.create_user(username="terminal-otto", password="pw-otto-123")
    (live_app.own_folder(other)).mkdir(parents=True, exist_ok=True)
    log_in(page, live_app.base_url, "terminal-tess", "pw-tess-123")
    open_new_chat(page, "My name is Tess")
    expect(page.locator("article.turn").nth(0)).to_contain_text("Nice to meet you")

    page.get_by_role("link", name="Terminal", exact=True).click()
    expect(page.locator("#ws-terminal-status")).to_have_text("Connected.")
    _run(page, "ls -a; git status; echo MARK-$((6*7))")
    expect(_screen(page)).to_contain_text("MARK-42")
    expect(_screen(page)).to_contain_text("On branch")

    secret = live_app.data_dir / "secret-key.txt"
    _run(page, f"cat {secret}; ls {live_app.own_folder(other)}; echo VARS-$(env | grep -c DJANGO_)")
    expect(_screen(page)).to_contain_text("VARS-0")
    expect(_screen(page)).to_contain_text(re.compile(r"No such file or directory.*No such file or directory"))

    _run(page, "echo SIZE-$(stty size | tr ' ' x)")
    expect(_screen(page)).to_contain_text(re.compile(r"SIZE-\d+x\d+"))
    before = re.search(r"SIZE-(\d+x\d+)", _screen(page).inner_text()).group(1)
    page.set_viewport_size({"width": 700, "height": 500})
    _run(page, "echo RESIZED-$(stty size | tr ' ' x)")
    expect(_screen(page)).to_contain_text(re.compile(r"RESIZED-\d+x\d+"))
    after = re.search(r"RESIZED-(\d+x\d+)", _screen(page).inner_text()).group(1)
    assert after != before

    page.reload()
    expect(page.locator("#ws-terminal-status")).to_have_text("Connected.")
    expect(_screen(page)).to_contain_text("RESIZED-")  # the same shell, its scrollback replayed
    _run(page, "echo AGAIN-$((1+1))")
    expect(_screen(page)).to_contain_text("AGAIN-2")
