"""An admin's MCP servers reach the agent of a project's chats, run in its sandbox, and only they do.

The real CLI runs in its real sandbox against the stand-in; its MCP server is the tiny stdio server
of ``devtools/mcp_echo.py`` run by Debian's ``/usr/bin/python3`` (the sandbox shows ``/usr``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import ValidationError
from django.test import Client

from chat.models import Event, McpServer, Session
from chat.services import mcp
from devtools import mcp_echo
from tests.factories import logged_in_client, make_session, make_user
from tests.real_turns import answer_of, say

pytestmark = [pytest.mark.usefixtures("rt"), pytest.mark.django_db(transaction=True), pytest.mark.real_cli]

SOURCE = Path(mcp_echo.__file__).read_text()


def echo_server(*, project: str = "default", name: str = "echoer", probes: tuple[str, ...] = ()) -> McpServer:
    args = ["-c", SOURCE]
    for path in probes:
        args += ["--probe", path]
    server = McpServer(project=project, name=name, command="/usr/bin/python3", args=args)
    server.full_clean()
    server.save()
    return server


@pytest.fixture
def member(claude_env, settings):
    settings.CLAUDE_PERMISSION_MODE = "bypassPermissions"  # the tool runs unasked (prompts: the browser test)
    return make_user(username="ada")


async def test_a_stdio_servers_tool_is_called_inside_the_sandbox_and_its_answer_shown(member, rt):
    data = Path(settings.DATA_DIR)
    data.mkdir(parents=True, exist_ok=True)
    session = await sync_to_async(make_session)(owner=member)
    await sync_to_async(echo_server)(probes=(str(data), session.workdir))

    turn = await say(engine=rt, session=session, user=member, text="mcp echoer echo hello")

    [call] = [e async for e in Event.objects.filter(turn=turn, kind=Event.Kind.TOOL_USE)]
    assert call.name == "mcp__echoer__echo" and call.data["input"] == {"text": "hello"}
    [result] = [e async for e in Event.objects.filter(turn=turn, kind=Event.Kind.TOOL_RESULT)]
    # It ran as the agent (uid 1000), seeing the chat's folder but not the server's data folder.
    assert result.text == f"echo: hello; {data} is not there; {session.workdir} is visible; uid 1000", result.text
    assert "Done. The tool said: echo: hello" in await answer_of(turn)
    # The server lives as long as the chat's warm process: what a turn leaves running is ended with
    # the turn, the CLI's own MCP server is not.
    again = await say(engine=rt, session=session, user=member, text="mcp echoer echo again")
    [result] = [e async for e in Event.objects.filter(turn=again, kind=Event.Kind.TOOL_RESULT)]
    assert result.text.startswith("echo: again;") and not result.is_error, result.text
    # The CLI's init message, recorded for the chat's page: the server and its tools.
    session = await Session.objects.aget(pk=session.pk)
    assert session.mcp_seen == {"servers": {"echoer": {"status": "connected", "tools": ["echo"]}}}
    [row] = await sync_to_async(mcp.panel)(session)
    assert (row.name, row.on, row.status, row.tools) == ("echoer", True, "connected", ("echo",))


async def tools_of(session: Session) -> dict[str, Any]:
    """The MCP servers and tools the CLI's init message reported for the chat's latest turn."""
    return (await Session.objects.aget(pk=session.pk)).mcp_seen or {}


async def called(turn) -> tuple[str, bool]:
    [result] = [e async for e in Event.objects.filter(turn=turn, kind=Event.Kind.TOOL_RESULT)]
    return result.text, result.is_error


async def test_a_server_turned_off_in_a_chat_is_not_offered_there(member, rt):
    await sync_to_async(echo_server)()
    session = await sync_to_async(make_session)(owner=member)
    first = await say(engine=rt, session=session, user=member, text="mcp echoer echo one")
    assert await called(first) == ("echo: one; uid 1000", False)

    await sync_to_async(mcp.set_off)(session=session, name="echoer", off=True)
    # The warm process had the server: the next turn starts one without it, with the chat's memory.
    off = await say(engine=rt, session=session, user=member, text="mcp echoer echo two")
    text, is_error = await called(off)
    assert is_error and "mcp__echoer__echo" in text and "echo: two" not in text, text
    assert await tools_of(session) == {"servers": {}}
    [row] = await sync_to_async(mcp.panel)(await Session.objects.aget(pk=session.pk))
    assert (row.on, row.status) == (False, "off in this chat")
    # Another chat of the project still has it.
    other = await sync_to_async(make_session)(owner=member)
    elsewhere = await say(engine=rt, session=other, user=member, text="mcp echoer echo three")
    assert await called(elsewhere) == ("echo: three; uid 1000", False)

    await sync_to_async(mcp.set_off)(session=session, name="echoer", off=False)
    back = await say(engine=rt, session=session, user=member, text="mcp echoer echo four")
    assert await called(back) == ("echo: four; uid 1000", False)
    assert "echo: one" in await answer_of(first)


async def test_servers_the_agent_configured_itself_are_not_started(member, rt):
    """An agent can write an .mcp.json in its folder and a .claude.json in its config folder (a
    server there would run a command of its choosing outside any prompt): neither is read."""
    await sync_to_async(echo_server)()
    session = await sync_to_async(make_session)(owner=member)
    workdir, config = Path(session.workdir), Path(session.config_dir)
    marker = workdir / "planted-ran"
    planted = {"mcpServers": {"planted": {"type": "stdio", "command": "/bin/sh", "args": ["-c", f"touch {marker}"]}}}
    (workdir / ".mcp.json").write_text(json.dumps(planted))
    config.mkdir(parents=True, exist_ok=True)
    (config / ".claude.json").write_text(json.dumps(planted))

    turn = await say(engine=rt, session=session, user=member, text="mcp planted run")

    text, is_error = await called(turn)
    assert is_error and "mcp__planted__run" in text, text
    assert not marker.exists()
    assert await tools_of(session) == {"servers": {"echoer": {"status": "connected", "tools": ["echo"]}}}


async def test_a_project_gets_only_its_own_servers(member, rt, tmp_path, settings):
    shared = tmp_path / "shared"
    shared.mkdir()
    settings.CLAUDE_PROJECTS = {"api": str(shared)}
    await sync_to_async(echo_server)(project="api", name="api-only")
    session = await sync_to_async(make_session)(owner=member)
    assert await sync_to_async(mcp.config_for)(session) == ""
    turn = await say(engine=rt, session=session, user=member, text="echo: hi")
    assert "hi" in await answer_of(turn)
    assert await tools_of(session) == {"servers": {}}


SECRET = "MCP-SECRET-5d2e"


@pytest.mark.xfail(
    strict=False,
    reason="known flake on a loaded machine: the CLI sometimes reports the HTTP server 'failed' at its start "
    "(2 of 3 full runs on 2 busy cores; it passes alone and in quiet runs); not yet explained",
)
async def test_an_http_server_is_reached_through_the_proxy_which_adds_its_secret(member, rt, monkeypatch):
    monkeypatch.setenv("DOCS_MCP_TOKEN", SECRET)
    http = mcp_echo.serve_http(secret=SECRET)
    try:
        url = f"http://127.0.0.1:{http.server_address[1]}/mcp"
        server = McpServer(project="default", name="docs", kind="http", url=url, secret_env="DOCS_MCP_TOKEN")
        await sync_to_async(server.full_clean)()
        await server.asave()
        session = await sync_to_async(make_session)(owner=member)
        turn = await say(engine=rt, session=session, user=member, text="mcp docs echo hi")
        text, is_error = await called(turn)
        seen = await tools_of(session)
        assert text.startswith("echo: hi;") and text.endswith("; authorized: yes") and not is_error, (text, seen)
        # The agent's CLI was given the proxy's route, never the server's URL or the secret.
        setup = await sync_to_async(mcp.setup_for)(session)
        assert SECRET not in setup.config and url not in setup.config and "/mcp/" in setup.config
        shell = await say(engine=rt, session=session, user=member, text="run: env; cat /proc/*/cmdline")
        output, _ = await called(shell)
        assert "DOCS_MCP_TOKEN" not in output and SECRET not in output and "mcp/" in output
        [token] = rt.node.egress.mcp_routes
        assert f"/mcp/{token}" in setup.config
        # Deleted by the admin: from the next turn on (any chat's) the proxy no longer serves its route.
        await server.adelete()
        await say(engine=rt, session=await sync_to_async(make_session)(owner=member), user=member, text="echo: x")
        assert rt.node.egress.mcp_routes == {}
    finally:
        http.shutdown()


async def test_a_server_that_does_not_start_is_shown_failed_and_the_chat_goes_on(member, rt):
    broken = McpServer(project="default", name="broken", command="/usr/bin/false")
    await sync_to_async(broken.full_clean)()
    await broken.asave()
    session = await sync_to_async(make_session)(owner=member)
    turn = await say(engine=rt, session=session, user=member, text="echo: still here")
    assert "still here" in await answer_of(turn)
    [row] = await sync_to_async(mcp.panel)(await Session.objects.aget(pk=session.pk))
    assert (row.name, row.status, row.tools) == ("broken", "failed", ())


def test_the_admins_configuration_is_checked(settings):
    settings.CLAUDE_PROJECTS = {}
    bad = McpServer(project="nope", name="Bad Name", kind="stdio", command="", args="-x", env={"A B": 1})
    with pytest.raises(ValidationError) as caught:
        bad.full_clean()
    assert set(caught.value.message_dict) == {"project", "name", "command", "args", "env"}
    with pytest.raises(ValidationError) as caught:
        McpServer(project="default", name="web", kind="http", url="", secret_env="Bearer abc").full_clean()
    assert set(caught.value.message_dict) == {"url", "secret_env"}


def test_only_the_chats_owner_turns_a_server_off_and_only_a_server_of_its_project(member):
    server = echo_server()
    session = make_session(owner=member)
    other: Client = logged_in_client(user=make_user(username="bob"))
    url = f"/chat/{session.id}/mcp/"
    assert other.post(url, {"server": server.name}).status_code == 404
    owner = logged_in_client(user=member)
    said = owner.post(url, {"server": server.name}).content.decode()
    assert "The next messages run without the MCP server echoer." in said
    session.refresh_from_db()
    assert session.mcp_off == ["echoer"]
    refused = owner.post(url, {"server": "planted", "on": "on"}).content.decode()
    assert "This chat&#x27;s project has no MCP server &#x27;planted&#x27;" in refused
    assert owner.post(url, {"server": "echoer", "on": "on"}).status_code == 200
    session.refresh_from_db()
    assert session.mcp_off == []
    page = owner.get(session.get_absolute_url()).content.decode()
    assert 'data-server="echoer"' in page and "starts with the next message" in page


def test_an_admin_adds_a_server_in_the_admin_and_a_member_cannot(member, settings):
    settings.CLAUDE_PROJECTS = {}
    form = {
        "project": "default",
        "name": "echoer",
        "kind": "stdio",
        "command": "/usr/bin/python3",
        "args": '["-c", "print(1)"]',
        "env": '{"LOG_LEVEL": "info"}',
        "url": "",
        "secret_env": "",
        "enabled": "on",
    }
    assert logged_in_client(user=member).post("/admin/chat/mcpserver/add/", form).status_code == 302  # to the login
    assert not McpServer.objects.exists()
    root = make_user(username="root", is_staff=True)
    root.is_superuser = True
    root.save()
    staff = logged_in_client(user=root)
    assert staff.post("/admin/chat/mcpserver/add/", {**form, "name": "Bad name"}).status_code == 200
    assert staff.post("/admin/chat/mcpserver/add/", form).status_code == 302
    server = McpServer.objects.get()
    assert (server.args, server.env) == (["-c", "print(1)"], {"LOG_LEVEL": "info"})
