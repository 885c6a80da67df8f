"""Slash commands, plan mode, the context meter and pasted images in a real browser, against the real
server and CLI."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.test_chat import PNG, log_in, open_new_chat
from tests.browser.test_live_state import finished

pytestmark = [pytest.mark.browser, pytest.mark.real_cli]


def test_the_slash_menu_is_keyboard_driven_and_only_its_choice_runs_as_a_command(live_app, page):
    live_app.create_user(username="cleo", password="pw-cleo-123")
    log_in(page, live_app.base_url, "cleo", "pw-cleo-123")
    open_new_chat(page, "my name is Cleo")
    turns = page.locator("article.turn")
    expect(turns.nth(0)).to_contain_text("Nice to meet you, Cleo.")
    # The meter shows how full the context window is once the model has read the chat.
    expect(page.locator("#context-meter")).to_contain_text(re.compile(r"Context \d+% \([\d,]+ of [\d,]+ tokens\)"))

    box = page.get_by_label("Message")
    menu = page.get_by_role("listbox", name="Slash commands")
    box.press_sequentially("/co")
    expect(menu).to_be_visible()
    expect(menu.get_by_role("option")).to_have_text(
        [re.compile(r"^\s*/compact"), re.compile(r"^\s*/context"), re.compile(r"^\s*/cost")]
    )
    box.press("ArrowDown")
    expect(menu.get_by_role("option", selected=True)).to_contain_text("/context")
    box.press("ArrowUp")
    box.press("Enter")  # chooses /compact: nothing is sent yet
    expect(menu).to_be_hidden()
    expect(box).to_have_value("/compact ")
    expect(page.get_by_text("Runs as a command.")).to_be_visible()
    box.press_sequentially("keep names")
    box.press("Enter")
    expect(turns.nth(1).locator(".msg.user .badge")).to_have_text("command")
    expect(turns.nth(1).locator(".event.notice")).to_contain_text(re.compile(r"Compacted: [\d,]+ → [\d,]+ tokens\."))

    # Typed past the menu (Esc closes it): text, read by the model as such.
    box.press_sequentially("/cost")
    box.press("Escape")
    box.press("Enter")
    expect(turns.nth(2)).to_contain_text("You said: /cost")
    expect(turns.nth(2).locator(".msg.user .badge")).to_have_count(0)


def test_plan_mode_shows_the_plan_and_run_this_plan_carries_it_out(live_app, page):
    dan = live_app.create_user(username="dan", password="pw-dan-123")
    log_in(page, live_app.base_url, "dan", "pw-dan-123")
    open_new_chat(page, "my name is Dan")
    turns = page.locator("article.turn")
    expect(turns.nth(0)).to_contain_text("Nice to meet you, Dan.")
    page.get_by_label("Plan first").check()
    expect(page.locator("#flash")).to_contain_text("plan first and change nothing")

    box = page.get_by_label("Message")
    box.fill("write plan.txt: planned")
    box.press("Enter")
    card = turns.nth(1).locator(".plan-card")
    expect(card).to_contain_text("Do what was asked: write plan.txt: planned")
    expect(turns.nth(1).locator(".turn-status .stats")).to_be_visible()
    assert not (live_app.own_folder(dan) / "plan.txt").exists()

    card.get_by_role("button", name="Run this plan").click()
    expect(page.get_by_label("Plan first")).not_to_be_checked()
    expect(turns.nth(2).locator(".msg.user")).to_contain_text("Go ahead with the plan.")
    prompt = turns.nth(2).locator(".event.permission")
    expect(prompt).to_contain_text("Claude Code asks to use Write")
    prompt.get_by_role("button", name="Allow", exact=True).click()
    expect(turns.nth(2)).to_contain_text("File created successfully")
    assert (live_app.own_folder(dan) / "plan.txt").read_text() == "planned\n"
    # The plan ran: its button is gone from the card.
    expect(card.get_by_role("button", name="Run this plan")).to_have_count(0)


def test_an_image_pasted_into_the_box_is_attached_and_reaches_the_model(live_app, page):
    eve = live_app.create_user(username="eve", password="pw-eve-123")
    log_in(page, live_app.base_url, "eve", "pw-eve-123")
    open_new_chat(page, "my name is Eve")
    page.locator("#message").focus()
    page.evaluate(
        """png => {
            const bytes = Uint8Array.from(atob(png), c => c.charCodeAt(0));
            const data = new DataTransfer();
            data.items.add(new File([bytes], "image.png", {type: "image/png"}));
            const paste = new ClipboardEvent("paste", {clipboardData: data, bubbles: true, cancelable: true});
            document.getElementById("message").dispatchEvent(paste);
        }""",
        PNG,
    )
    chip = page.locator("#attached .chip")
    expect(chip).to_contain_text(re.compile(r"Image: pasted-\d+\.png"))
    box = page.get_by_label("Message")
    expect(box).to_have_value("")  # the picture, not its name
    box.fill("what is in the picture")
    box.press("Enter")
    expect(page.locator("article.turn").nth(1)).to_contain_text("I see 1 image: image/png, 70 bytes.")
    assert len(list((live_app.own_folder(eve) / "attachments").glob("pasted-*.png"))) == 1


def test_rewind_and_fork_from_the_page_and_a_subagents_call_nests_live(live_app, page):
    fay = live_app.create_user(username="fay", password="pw-fay-123")
    log_in(page, live_app.base_url, "fay", "pw-fay-123")
    open_new_chat(page, "my name is Fay")
    turns = page.locator("article.turn")
    box = page.get_by_label("Message")
    for i, text in enumerate(["my name is Gil", "my name is Hal"], start=1):
        box.fill(text)
        box.press("Enter")
        expect(turns.nth(i)).to_contain_text("Nice to meet you")
    finished(turns.nth(2))  # its answer shows before the turn ends; a rewind waits for the end
    # The latest message offers a fork only; earlier ones also a rewind.
    expect(turns.nth(2).get_by_role("button", name="Rewind to here")).to_have_count(0)
    turns.nth(0).get_by_role("button", name="Rewind to here").click()
    expect(page.locator("#flash")).to_contain_text("no longer remembers the 2 later messages")
    expect(turns.nth(1).locator(".dropped-note")).to_be_visible()
    box.fill("what is my name")
    box.press("Enter")
    expect(turns.nth(3)).to_contain_text("Your name is Fay.")

    expect(turns.nth(1).get_by_role("button", name="Fork from here")).to_have_count(0)  # left behind
    finished(turns.nth(3))
    turns.nth(3).get_by_role("button", name="Fork from here").click()
    page.locator("#flash").get_by_role("link", name="Open it").click()
    expect(page.locator(".forked-note")).to_contain_text("Forked from")
    (live_app.own_folder(fay) / "notes.txt").write_text("notes for the subagent\n")
    box = page.get_by_label("Message")
    box.fill("delegate: read notes.txt")
    box.press("Enter")
    card = page.locator("article.turn").nth(0).locator(".subagent-card")
    expect(card.locator(".subagent .event.tool_use")).to_contain_text("Read")
    expect(card.locator(".subagent .event.tool_result")).to_be_visible()
