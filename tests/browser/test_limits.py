"""What a person is told, in a real browser, when what they send is over a limit of the server."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.test_chat import log_in, open_new_chat

pytestmark = [pytest.mark.browser, pytest.mark.real_cli]

MIB = 1024 * 1024
SOCKET = "document.querySelector('[ws-connect]')['htmx-internal-data'].webSocket"


def chat_of(live_app, page, name: str):
    """A new member called ``name``, logged in, on a new chat that has introduced them; its turns."""
    live_app.create_user(username=name.lower(), password=f"pw-{name.lower()}-123")
    log_in(page, live_app.base_url, name.lower(), f"pw-{name.lower()}-123")
    open_new_chat(page, f"My name is {name}")
    turns = page.locator("article.turn")
    expect(turns.nth(0)).to_contain_text(f"Nice to meet you, {name}.")
    return turns


def test_a_message_too_large_for_the_connection_is_not_sent_and_stays_in_the_box(live_app, page):
    turns = chat_of(live_app, page, "Ana")

    # Over a MiB of text (an admin may allow messages that long: the box's maxlength is set aside here).
    huge = "a" * (MIB + 10)
    page.evaluate("text => { document.getElementById('message').value = text; }", huge)
    page.get_by_role("button", name="Send").click()
    flash = page.locator("#flash")
    expect(flash).to_contain_text("This message was not sent: it is 1.0 MB, and at most 1.0 MB can be sent at once.")
    expect(flash).to_contain_text("Attach the text as a file instead (Attach), or shorten it.")
    assert page.get_by_label("Message").input_value() == huge
    assert turns.count() == 1
    expect(page.locator("body[data-ws=open]")).to_have_count(1)


def test_a_frame_over_the_limit_is_closed_with_a_reason_and_the_page_reconnects(live_app, page):
    turns = chat_of(live_app, page, "Ben")
    page.evaluate(f"window.closes = []; {SOCKET}.socket.addEventListener('close', e => window.closes.push(e.code))")

    # Past the page's own check (another client, say): the server says why it closes.
    page.evaluate(f"{SOCKET}.socket.send('x'.repeat({2 * MIB}))")
    expect(page.locator("#flash")).to_contain_text("The last message was too large for the server and was not sent.")
    expect(page.locator("#flash")).to_contain_text("Attach the text as a file instead")
    assert page.evaluate("window.closes") == [1009]
    expect(page.locator("body[data-ws=open]")).to_have_count(1)
    box = page.get_by_label("Message")
    box.fill("What is my name?")
    box.press("Enter")
    expect(turns.nth(1)).to_contain_text("Your name is Ben.")


def test_a_file_over_the_attachment_limit_is_refused_before_it_is_uploaded(live_app, page):
    chat_of(live_app, page, "Cat")
    uploads: list[str] = []
    page.on("request", lambda request: uploads.append(request.url) if "/attach" in request.url else None)
    page.locator("#attach-files").set_input_files(
        files=[{"name": "big.log", "mimeType": "text/plain", "buffer": b"x" * (10 * MIB + 1)}]
    )
    expect(page.locator("#flash")).to_contain_text("“big.log” is 10.0 MB; an attachment may be at most 10.0 MB.")
    expect(page.locator("#attached li")).to_have_count(0)
    assert uploads == []
