"""An admin's MCP server on the chat page, in a real browser against the real server and CLI: the
server and its tools listed, a call of its tool asked for and shown as a card, and the server
turned off for one chat."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

import devtools.mcp_echo
from tests.browser.test_chat import log_in, open_new_chat
from tests.conftest import serving

pytestmark = [pytest.mark.browser, pytest.mark.real_cli]


@pytest.fixture(scope="module")
def mcp_app(stub_api, tmp_path_factory):
    """An app of its own: its members' own folders get the echo server (other tests' chats don't)."""
    with serving(stub_api, tmp_path_factory.mktemp("mcp-app")) as app:
        args = ["-c", Path(devtools.mcp_echo.__file__).read_text(), "--probe", str(app.data_dir / "db.sqlite3")]
        code = (
            "import json, os; from chat.models import McpServer; "
            "s = McpServer(project='default', name='echoer', command='/usr/bin/python3', args=json.loads(os.environ['A'])); "
            "s.full_clean(); s.save()"
        )
        app.manage("shell", "-c", code, extra_env={"A": json.dumps(args)})
        yield app


def test_the_chat_lists_its_mcp_server_and_a_call_of_its_tool_is_a_card(mcp_app, page):
    mcp_app.create_user(username="mia", password="pw-mia-123")
    log_in(page, mcp_app.base_url, "mia", "pw-mia-123")
    open_new_chat(page, "mcp echoer echo hello from the page")
    turns = page.locator("article.turn")
    # Like any tool the project's permission mode does not allow, its call is asked first.
    prompt = turns.nth(0).locator(".event.permission")
    expect(prompt).to_contain_text("Claude Code asks to use mcp__echoer__echo")
    prompt.get_by_role("button", name="Allow", exact=True).click()
    # One card shows the call: the prompt's, or the call's own above it (the other one is hidden).
    expect(turns.nth(0).locator(".tool-card.tool-mcp:visible")).to_contain_text("MCP server echoer")
    # Its answer came from inside the sandbox, where the server's data folder is not.
    assert (mcp_app.data_dir / "db.sqlite3").is_file()
    expect(turns.nth(0)).to_contain_text("echo: hello from the page; …/db.sqlite3 is not there; uid 1000")
    expect(turns.nth(0)).to_contain_text("Done. The tool said: echo: hello from the page")

    panel = page.get_by_role("region", name="MCP servers")
    expect(panel).to_contain_text("echoer: connected")
    panel.locator("summary").click()
    server = panel.locator("li.mcp-server", has_text="echoer")
    expect(server).to_contain_text("runs /usr/bin/python3 in this chat's sandbox")
    expect(server.locator(".mcp-tools")).to_have_text(re.compile(r"Tools:\s*echo"))

    # Turned off for this chat: its next turn runs without it, and a reload still says so.
    server.get_by_label("On in this chat").uncheck()
    expect(page.locator("#flash")).to_contain_text("The next messages run without the MCP server echoer.")
    expect(panel).to_contain_text("echoer: off in this chat")
    box = page.get_by_label("Message")
    box.fill("mcp echoer echo again")
    box.press("Enter")
    expect(turns.nth(1).locator(".event.permission")).to_have_count(0)
    expect(turns.nth(1)).to_contain_text("mcp__echoer__echo")
    expect(turns.nth(1)).not_to_contain_text("echo: again")
    page.reload()
    page.get_by_role("region", name="MCP servers").locator("summary").click()
    expect(page.get_by_label("On in this chat")).not_to_be_checked()
