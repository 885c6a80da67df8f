"""A server whose disk is full says so wherever a person meets it (the page, uploads, tasks, the
API), and works again once there is room: the real server, its data folder on a small tmpfs filled
to the last byte."""

from __future__ import annotations

import json
import re
import sqlite3
import urllib.error
import urllib.request

import pytest
from playwright.sync_api import expect

from tests.browser.test_chat import log_in, open_new_chat
from tests.conftest import serving
from tests.disks import fill, small_disk

pytestmark = [pytest.mark.browser, pytest.mark.real_cli]

FULL = "The server's disk is full, so {} was not saved. Tell an admin: the server needs free disk space."


@pytest.fixture(scope="module")
def small_app(stub_api, tmp_path_factory):
    """The app served from a data folder of its own on a 64 MB file system."""
    with small_disk(tmp_path_factory.mktemp("small-app") / "data", size="64m") as data:
        with serving(stub_api, data) as app:
            yield app


def call(app, path: str, token: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        app.base_url + path,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as failed:
        return failed.code, json.loads(failed.read())


def test_a_full_disk_is_said_where_a_person_meets_it_and_nothing_half_made_stays(small_app, page, problems):
    # What the server answers on purpose here: the upload, the new chat and the new task are refused.
    problems.allow(r"Failed to load resource: the server responded with a status of 507")
    small_app.create_user(username="eve", password="pw-eve-123")
    token = small_app.manage("api_token", "eve").split()[-1]
    log_in(page, small_app.base_url, "eve", "pw-eve-123")
    open_new_chat(page, "My name is Eve")
    turns = page.locator("article.turn")
    expect(turns.nth(0)).to_contain_text("Nice to meet you, Eve.")
    chat_url = page.url
    session_id = re.search(r"/chat/([0-9a-f-]{36})/$", chat_url).group(1)

    empty_the_log(small_app)
    filler = fill(small_app.data_dir)

    # A message on the chat's page: not saved, said so, and back in the box.
    box = page.get_by_label("Message")
    box.fill("What is my name?")
    box.press("Enter")
    flash = page.locator("#flash")
    expect(flash).to_contain_text(FULL.format("your message"))
    expect(box).to_have_value("What is my name?")
    assert turns.count() == 1

    # An upload.
    page.locator("#attach-files").set_input_files(
        files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"x" * 200_000}]
    )
    expect(flash).to_contain_text(FULL.format("“notes.txt”"))
    expect(page.locator("#attached li")).to_have_count(0)

    # A new chat: no empty chat is left behind.
    page.get_by_role("link", name="New chat").first.click()
    page.get_by_label("Message").fill("A new start")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#flash")).to_contain_text(FULL.format("your message"))
    expect(page.get_by_label("Message")).to_have_value("A new start")

    # A new task.
    page.goto(small_app.base_url + "/tasks/new/")
    page.get_by_label("What should Claude Code do?").fill("Add a README")
    page.get_by_role("button", name="Start task").click()
    expect(page.get_by_text(FULL.format("the task"))).to_be_visible()

    # The API.
    status, answer = call(small_app, "/api/analysis/chat", token, {"sessionId": session_id, "message": "hi"})
    assert (status, answer["error"]) == (507, FULL.format("what you sent") + " Then try again.")
    status, answer = call(small_app, "/api/tasks", token, {"prompt": "Add a README"})
    assert status == 507 and answer["error"].startswith(FULL.format("what you sent"))

    # Room again: the same message goes through, and nothing half made was kept.
    filler.unlink()
    page.goto(chat_url)
    expect(page.locator("body[data-ws=open]")).to_have_count(1)
    box = page.get_by_label("Message")
    box.fill("What is my name?")
    box.press("Enter")
    expect(turns.nth(1)).to_contain_text("Your name is Eve.")
    page.goto(small_app.base_url + "/")
    chats = page.locator("#chat-list li")
    expect(chats).to_have_count(1)
    expect(chats).to_contain_text("My name is Eve")
    status, answer = call(small_app, "/api/tasks", token, {"prompt": "Add a README"})
    assert status == 201, answer
    with urllib.request.urlopen(
        urllib.request.Request(small_app.base_url + "/api/tasks", headers={"Authorization": f"Bearer {token}"})
    ) as listed:
        assert [task["id"] for task in json.loads(listed.read())["tasks"]] == [answer["id"]]


def test_a_disk_that_fills_up_during_a_turn_is_said_on_the_page(small_app, page):
    small_app.create_user(username="fay", password="pw-fay-123")
    log_in(page, small_app.base_url, "fay", "pw-fay-123")
    open_new_chat(page, "slow 30")
    answer = page.locator("article.turn .event.text")
    expect(answer).to_contain_text("word2", timeout=20_000)

    empty_the_log(small_app)
    filler = fill(small_app.data_dir)
    try:
        expect(page.locator("#flash")).to_contain_text(
            "The server's disk filled up during this turn, so what came after that was not saved. Tell an admin: "
            "the server needs free disk space. Then send the message again.",
            timeout=20_000,
        )
    finally:
        filler.unlink()


def empty_the_log(app) -> None:
    """Move the database's write-ahead log into it and empty it, so that the next write must grow a
    file (a log with room left would take writes on a full disk); retried while a write is under way."""
    database = sqlite3.connect(app.data_dir / "db.sqlite3", timeout=20)
    try:
        while database.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]:
            pass
    finally:
        database.close()
