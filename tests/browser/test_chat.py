"""A person's path through the chat in a real browser, against the real server and CLI."""

from __future__ import annotations

import base64
import re

import pytest
from playwright.sync_api import Page, expect

pytestmark = [pytest.mark.browser, pytest.mark.real_cli]


def log_in(page: Page, base_url: str, username: str, password: str) -> None:
    page.goto(base_url + "/")
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Your chats")).to_be_visible()


def open_new_chat(page: Page, first_message: str) -> None:
    """New chat, then its first message: the chat is made by it, and the page moves to the chat."""
    page.get_by_role("link", name="New chat").first.click()
    expect(page).to_have_url(re.compile(r"/chat/new/$"))
    box = page.get_by_label("Message")
    box.fill(first_message)
    box.press("Enter")
    expect(page).to_have_url(re.compile(r"/chat/[0-9a-f-]{36}/$"))
    # Sending before the websocket is open would queue the message in the page: wait for it.
    expect(page.locator("body[data-ws=open]")).to_have_count(1)


def test_enter_on_new_chat_streams_the_answer_without_a_page_load_and_a_reload_shows_the_chat(live_app, page):
    live_app.create_user(username="quinn", password="pw-quinn-123")
    log_in(page, live_app.base_url, "quinn", "pw-quinn-123")
    page.get_by_role("link", name="New chat").first.click()
    expect(page).to_have_url(re.compile(r"/chat/new/$"))
    expect(page.locator("body[data-ws=open]")).to_have_count(1)  # the page's socket opens at once
    page.evaluate("window.stillThisPage = true")  # gone if the browser loads another page

    box = page.get_by_label("Message")
    box.fill("My name is Quinn")  # its first keystroke starts the chat's process
    box.press("Enter")
    turns = page.locator("article.turn")
    expect(turns.nth(0)).to_contain_text("Nice to meet you, Quinn.")
    expect(page).to_have_url(re.compile(r"/chat/[0-9a-f-]{36}/$"))
    expect(page.get_by_role("heading", name="My name is Quinn")).to_be_visible()
    assert page.evaluate("window.stillThisPage") is True
    expect(page.locator(".recent li a[aria-current=page]")).to_have_text("My name is Quinn")

    # The chat goes on over the same socket, and is there after a reload.
    box = page.get_by_label("Message")
    expect(box).to_have_value("")
    box.fill("What is my name?")
    box.press("Enter")
    expect(turns.nth(1)).to_contain_text("Your name is Quinn.")
    assert page.evaluate("window.stillThisPage") is True
    page.reload()
    expect(turns).to_have_count(2)
    expect(turns.nth(1)).to_contain_text("Your name is Quinn.")
    expect(page.get_by_role("heading", name="My name is Quinn")).to_be_visible()


def test_log_in_new_chat_two_turns_with_memory_and_a_tool_call(live_app, page):
    ada = live_app.create_user(username="ada", password="pw-ada-123")
    log_in(page, live_app.base_url, "ada", "pw-ada-123")
    open_new_chat(page, "My name is Ada")

    box = page.get_by_label("Message")
    turns = page.locator("article.turn")
    expect(turns.nth(0).locator(".msg.user")).to_contain_text("My name is Ada")
    expect(turns.nth(0)).to_contain_text("Nice to meet you, Ada.")
    expect(turns.nth(0).locator(".turn-status .stats")).to_contain_text(re.compile(r"\d+(\.\d)? s · \d+ tokens · \$"))
    expect(box).to_have_value("")

    box.fill("What is my name?")
    page.get_by_role("button", name="Send").click()
    expect(turns.nth(1)).to_contain_text("Your name is Ada.")

    box.fill("write notes.txt: hello from the browser")
    box.press("Enter")
    tool = turns.nth(2).locator(".event.tool_use")
    expect(tool).to_contain_text("Write")
    expect(tool).to_contain_text("notes.txt")
    # Chats run in the CLI's default mode: writing a file asks first.
    prompt = turns.nth(2).locator(".event.permission")
    expect(prompt).to_contain_text("Claude Code asks to use Write")
    expect(turns.nth(2).locator(".turn-status")).to_contain_text("Waiting for an answer")
    prompt.get_by_role("button", name="Allow", exact=True).click()
    expect(prompt).to_contain_text("Allowed by ada.")
    expect(prompt.get_by_role("button")).to_have_count(0)
    expect(turns.nth(2)).to_contain_text("File created successfully")
    assert (live_app.own_folder(ada) / "notes.txt").read_text() == "hello from the browser\n"

    page.goto(live_app.base_url + "/")
    expect(page.locator("#chat-list").get_by_role("link", name="My name is Ada")).to_be_visible()
    expect(page.locator(".recent").get_by_role("link", name="My name is Ada")).to_be_visible()


def test_reload_mid_stream_shows_the_partial_answer_and_the_rest_streams_in(live_app, page):
    live_app.create_user(username="bea", password="pw-bea-123")
    log_in(page, live_app.base_url, "bea", "pw-bea-123")
    open_new_chat(page, "slow 6")
    answer = page.locator("article.turn .event.text")
    expect(answer).to_contain_text("word5")
    expect(page.get_by_role("button", name="Stop")).to_be_enabled()

    page.reload()
    # The partial answer came from the database, while the turn still runs.
    expect(answer).to_contain_text("Slow answer: word1")
    expect(page.locator("article.turn .turn-status")).to_contain_text("Running")
    expect(answer).to_contain_text("(end of slow answer)", timeout=20_000)
    expect(page.locator("article.turn .turn-status .stats")).to_be_visible()


def test_stop_ends_the_turn_and_keeps_what_came(live_app, page):
    live_app.create_user(username="cy", password="pw-cy-123")
    log_in(page, live_app.base_url, "cy", "pw-cy-123")
    open_new_chat(page, "slow 20")
    answer = page.locator("article.turn .event.text")
    expect(answer).to_contain_text("word3")
    page.get_by_role("button", name="Stop").click()
    expect(page.locator("article.turn .turn-status")).to_contain_text("Stopped.")
    expect(answer).to_contain_text("word3")
    expect(answer).not_to_contain_text("(end of slow answer)")
    expect(page.get_by_role("button", name="Stop")).to_be_disabled()


def test_a_dropped_connection_catches_up_without_showing_anything_twice(live_app, page):
    live_app.create_user(username="dora", password="pw-dora-123")
    log_in(page, live_app.base_url, "dora", "pw-dora-123")
    sockets: list[str] = []
    page.on("websocket", lambda socket: sockets.append(socket.url))
    open_new_chat(page, "My name is Dee")
    box = page.get_by_label("Message")
    expect(page.locator("article.turn").nth(0)).to_contain_text("Nice to meet you, Dee.")
    box.fill("slow 5")
    box.press("Enter")
    answer = page.locator("article.turn").nth(1).locator(".event.text")
    expect(answer).to_contain_text("word2")

    # The socket drops and comes back mid-answer (htmx's own reconnect).
    page.evaluate("document.querySelector('[ws-connect]')['htmx-internal-data'].webSocket.publicInterface.reconnect()")

    expect(answer).to_contain_text("(end of slow answer)", timeout=20_000)
    expect(page.locator("article.turn .turn-status .stats")).to_have_count(2)
    assert re.search(r"\?turn=\d+&event=\d+&unfinished=\d+$", sockets[-1]), sockets
    assert page.locator("article.turn").count() == 2 and answer.count() == 1
    text = answer.inner_text()
    assert len(re.findall(r"\bword2\b", text)) == 1 and text.count("(end of slow answer)") == 1, text


# Lets a test hide the tab (document.hidden) and see the notifications the page shows.
WATCH_NOTIFICATIONS = """
Object.defineProperty(document, "hidden", {get: () => window.testHidden === true});
window.testNotes = [];
const RealNotification = window.Notification;
window.Notification = class extends RealNotification {
  constructor(title, options) { super(title, options); window.testNotes.push(title + " | " + options.body); }
};
"""


def test_a_prompt_notifies_a_hidden_tab_and_an_answer_in_one_tab_shows_in_the_other(live_app, page):
    live_app.create_user(username="dee", password="pw-dee-123")
    page.context.grant_permissions(["notifications"], origin=live_app.base_url)
    page.context.add_init_script(WATCH_NOTIFICATIONS)
    log_in(page, live_app.base_url, "dee", "pw-dee-123")
    open_new_chat(page, "Hello")
    expect(page.locator("article.turn .turn-status .stats")).to_be_visible()
    other = page.context.new_page()
    other.goto(page.url)
    expect(other.locator("body[data-ws=open]")).to_have_count(1)
    other.evaluate("window.testHidden = true")

    page.get_by_label("Message").fill("write todo.txt: buy milk")
    page.get_by_role("button", name="Send").click()
    prompt = other.locator(".event.permission")
    expect(prompt.get_by_role("button", name="Always allow Write in this chat")).to_be_visible()
    other.wait_for_function("window.testNotes.length === 1")
    assert other.evaluate("window.testNotes[0]").startswith("Claude Code asks for permission | It wants to use Write")
    assert page.evaluate("window.testNotes") == []  # the visible tab shows the prompt; no notification

    page.get_by_role("button", name="Deny").click()
    expect(prompt).to_contain_text("Denied by dee.")
    expect(prompt.get_by_role("button")).to_have_count(0)
    expect(other.locator("article.turn .turn-status .stats").nth(1)).to_be_visible()
    # The same opt-in tells a hidden tab that the answer is complete.
    other.wait_for_function("window.testNotes.length === 2")
    assert other.evaluate("window.testNotes[1]") == "Claude Code finished | Hello"
    assert page.evaluate("window.testNotes") == []


PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


def test_stop_stays_by_the_message_box_while_an_answer_streams_and_esc_stops(live_app, page):
    live_app.create_user(username="edith", password="pw-edith-123")
    page.set_viewport_size({"width": 375, "height": 640})
    log_in(page, live_app.base_url, "edith", "pw-edith-123")
    open_new_chat(page, "slow 20")
    answer = page.locator("article.turn .event.text")
    expect(answer).to_contain_text("word60", timeout=20_000)  # longer than the view by now
    stop = page.get_by_role("button", name="Stop")
    expect(stop).to_be_enabled()
    expect(stop).to_be_in_viewport()
    expect(page).to_have_title("● slow 20 · Claude Code chat")
    page.keyboard.press("Escape")
    expect(page.locator("article.turn .turn-status")).to_contain_text("Stopped.")
    expect(stop).to_be_disabled()
    expect(page).to_have_title("slow 20 · Claude Code chat")


def test_new_chat_from_a_chat_page_leaves_no_empty_chat_behind(live_app, page):
    live_app.create_user(username="fay", password="pw-fay-123")
    log_in(page, live_app.base_url, "fay", "pw-fay-123")
    open_new_chat(page, "echo: first chat")
    page.locator(".chat-tools").get_by_role("link", name="New chat").click()
    expect(page).to_have_url(re.compile(r"/chat/new/$"))
    page.get_by_role("link", name="Chats", exact=True).click()
    expect(page.locator("li.chat-row")).to_have_count(1)
    expect(page.locator(".recent li a")).to_have_text(["echo: first chat"])

    page.get_by_role("link", name="New chat").first.click()
    page.get_by_label("Message").fill("echo: second chat")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("article.turn")).to_contain_text("second chat")
    page.goto(live_app.base_url + "/")
    expect(page.locator("li.chat-row")).to_have_count(2)


def test_an_attached_file_lands_in_the_chats_folder_and_an_image_reaches_the_model(live_app, page):
    gus = live_app.create_user(username="gus", password="pw-gus-123")
    log_in(page, live_app.base_url, "gus", "pw-gus-123")
    open_new_chat(page, "echo: ready")
    expect(page.locator("article.turn")).to_contain_text("ready")

    page.locator("#attach-files").set_input_files(
        {"name": "../plan notes.txt", "mimeType": "text/plain", "buffer": b"step one: write the tests\n"}
    )
    expect(page.locator("#attached")).to_contain_text("plan-notes.txt")
    box = page.get_by_label("Message")
    box.fill("read attachments/plan-notes.txt")
    box.press("Enter")
    turn = page.locator("article.turn").nth(1)
    expect(turn.locator(".msg.user")).to_contain_text("Attached: attachments/plan-notes.txt")
    expect(turn).to_contain_text("step one: write the tests")
    expect(page.locator("#attached li")).to_have_count(0)
    assert (live_app.own_folder(gus) / "attachments" / "plan-notes.txt").read_text() == "step one: write the tests\n"

    page.locator("#attach-files").set_input_files(
        {"name": "dot.png", "mimeType": "image/png", "buffer": base64.b64decode(PNG)}
    )
    expect(page.locator("#attached")).to_contain_text("Image: dot.png")
    box.fill("What is in this picture?")
    box.press("Enter")
    expect(page.locator("article.turn").nth(2)).to_contain_text("I see 1 image: image/png, 70 bytes.")


def test_the_model_is_picked_for_a_new_chat_and_changed_on_its_page(live_app, page):
    live_app.create_user(username="hal", password="pw-hal-123")
    log_in(page, live_app.base_url, "hal", "pw-hal-123")
    page.get_by_role("link", name="New chat").first.click()
    page.get_by_label("Model").select_option("claude-stand-in-large")
    page.get_by_label("Message").fill("which model")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("article.turn").nth(0)).to_contain_text("the model claude-stand-in-large")
    expect(page.locator("body[data-ws=open]")).to_have_count(1)
    expect(page.get_by_label("Model")).to_have_value("claude-stand-in-large")

    page.get_by_label("Model").select_option("claude-stand-in-small")
    expect(page.locator("#flash")).to_have_text("The next messages use claude-stand-in-small.")
    page.get_by_label("Message").fill("which model")
    page.get_by_label("Message").press("Enter")
    # The chat's process starts again with that model (and the chat's memory): it takes a moment.
    expect(page.locator("article.turn").nth(1)).to_contain_text("the model claude-stand-in-small", timeout=20_000)


def test_the_tab_title_follows_a_rename_in_this_tab_and_in_another(live_app, page):
    live_app.create_user(username="ida", password="pw-ida-123")
    log_in(page, live_app.base_url, "ida", "pw-ida-123")
    open_new_chat(page, "echo: hi")
    expect(page).to_have_title("echo: hi · Claude Code chat")
    other = page.context.new_page()
    other.goto(page.url)
    expect(other.locator("body[data-ws=open]")).to_have_count(1)

    page.get_by_text("Rename", exact=True).click()
    page.get_by_label("Title").fill("Quarterly plan")
    page.get_by_role("button", name="Save").click()
    expect(page).to_have_title("Quarterly plan · Claude Code chat")
    expect(other).to_have_title("Quarterly plan · Claude Code chat")
    # The sidebars follow too (tests/browser/test_live_state.py has more of that).
    expect(other.locator(".recent")).to_contain_text("Quarterly plan")
    expect(other.locator(".recent")).not_to_contain_text("echo: hi")


PAGES_375 = ["/", "/chat/new/", "/tasks/", "/settings/"]


def test_every_page_fits_a_375px_phone_with_no_sideways_scroll_and_has_an_icon(live_app, page):
    live_app.create_user(username="jo", password="pw-jo-123")
    page.set_viewport_size({"width": 375, "height": 700})
    missing: list[str] = []
    page.on("response", lambda response: missing.append(response.url) if response.status == 404 else None)
    page.goto(live_app.base_url + "/accounts/login/")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375, "login"
    assert page.locator("link[rel=icon]").count() == 1
    log_in(page, live_app.base_url, "jo", "pw-jo-123")
    open_new_chat(page, "echo: a chat with a long unbroken word " + "x" * 120)
    expect(page.locator("article.turn .turn-status .stats")).to_be_visible()
    chat_url = page.url
    # The message box takes a tap (nothing covers it).
    page.get_by_label("Message").click()
    for path in [chat_url, *(live_app.base_url + p for p in PAGES_375)]:
        page.goto(path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, f"{path} is {width} px wide"
    assert missing == []


# Records, on every change of the page, what each streaming answer shows: its text and whether
# it already holds a rendered code block.
WATCH_ANSWERS = """
window.answerSamples = [];
new MutationObserver(function () {
  document.querySelectorAll("#turns .event.text").forEach(function (el) {
    window.answerSamples.push({text: el.textContent, streaming: el.classList.contains("streaming"),
                               code: el.querySelector(".code-block") !== null});
  });
}).observe(document.body, {childList: true, subtree: true, characterData: true});
"""


def test_a_markdown_answer_streams_rendered_never_raw_and_its_html_stays_inert(live_app, page):
    live_app.create_user(username="mo", password="pw-mo-123")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_app.base_url)
    log_in(page, live_app.base_url, "mo", "pw-mo-123")
    open_new_chat(page, "echo: ready")
    expect(page.locator("article.turn .turn-status .stats")).to_be_visible()
    page.evaluate(WATCH_ANSWERS)
    page.get_by_label("Message").fill("markdown 3")
    page.get_by_role("button", name="Send").click()
    answer = page.locator("article.turn").nth(1).locator(".event.text")
    # Poll the page too while the answer streams in, beside the observer's samples.
    polled: list[str] = []
    while not page.locator("article.turn").nth(1).locator(".turn-status .stats").is_visible():
        polled += answer.all_text_contents()
        page.wait_for_timeout(50)

    samples = [s for s in page.evaluate("window.answerSamples") if s["text"] != "ready"]
    streaming = [s for s in samples if s["streaming"]]
    assert len({s["text"] for s in streaming}) > 3, "the answer came in several renders"
    assert any(s["code"] for s in streaming), "the code block rendered while the answer streamed"
    for text in [s["text"] for s in samples] + polled:
        assert "```" not in text and "**" not in text, text

    expect(answer.get_by_role("heading", name="A plan")).to_be_visible()
    expect(answer.locator("strong")).to_have_text("bold text")
    expect(answer.locator("li")).to_have_text(["first item", "second item"])
    code = answer.locator(".code-block")
    expect(code.locator(".code-lang")).to_have_text("python")
    expect(code.locator("pre code .k").first).to_have_text("def")  # coloured by Pygments
    expect(answer).to_contain_text(
        "Raw HTML stays text: <script>alert('x')</script> <img src=x onerror=alert(1)> done."
    )
    expect(answer.locator("script, img, [onerror]")).to_have_count(0)

    rendered = answer.inner_html()
    code.get_by_role("button", name="Copy this code").click()
    expect(code.get_by_role("button", name="Copy this code")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == 'def greet(name):\n    return f"Hello, {name}!"\n'

    # A reload renders the saved answer with the same function: the same page.
    page.reload()
    assert answer.inner_html() == rendered


def test_an_edit_is_shown_as_a_diff_when_asked_and_once_done(live_app, page):
    user_id = live_app.create_user(username="edgar", password="pw-edgar-123")
    log_in(page, live_app.base_url, "edgar", "pw-edgar-123")
    open_new_chat(page, "echo: ready")
    expect(page.locator("article.turn .turn-status .stats")).to_be_visible()
    greeting = live_app.own_folder(user_id) / "greeting.txt"
    greeting.write_text("hello world\n")
    page.get_by_label("Message").fill("edit greeting.txt: hello => goodbye")
    page.get_by_role("button", name="Send").click()

    turn = page.locator("article.turn").nth(1)
    read = turn.locator(".event.tool_use .tool-read")
    expect(read).to_contain_text("Read")
    expect(read.locator(".tool-subject")).to_contain_text("greeting.txt")
    expect(turn.locator(".event.tool_result").first.locator(".result-summary")).to_have_text("1 line")

    prompt = turn.locator(".event.permission")
    expect(prompt).to_contain_text("Claude Code asks to use Edit")
    # The diff shows once, in the call's card just above its prompt.
    asked = turn.locator(".tool-edit:visible")
    expect(asked).to_have_count(1)
    expect(asked.locator("del.line")).to_have_text("hello")
    expect(asked.locator("ins.line")).to_have_text("goodbye")
    prompt.get_by_role("button", name="Allow", exact=True).click()
    expect(prompt).to_contain_text("Allowed by edgar.")

    edit = turn.locator(".event.tool_use .tool-edit")
    expect(edit.locator(".tool-subject")).to_contain_text("greeting.txt")
    expect(edit.locator("del.line")).to_have_text("hello")
    expect(edit.locator("ins.line")).to_have_text("goodbye")
    expect(edit.locator(".diffstat")).to_have_text("+1 −1")
    expect(turn.locator(".turn-status .stats")).to_be_visible()
    assert greeting.read_text() == "goodbye world\n"
