"""Terminals through the real ASGI application, in the real sandbox: a shell in the chat's folder that
sees nothing else of the server, survives a reconnect, takes resizes, answers garbage with a notice,
and is limited per member, refused to who may not work there, ended when idle."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from chat.models import ProjectAccess
from project.asgi import application_for
from tests.factories import logged_in_client, make_session, make_user, ws_headers
from tests.task_helpers import init_repo

pytestmark = [pytest.mark.usefixtures("rt"), pytest.mark.django_db(transaction=True)]


async def _open(rt, path: str, client) -> tuple[WebsocketCommunicator, bool, int | None]:
    communicator = WebsocketCommunicator(application_for(rt), path, headers=ws_headers(client=client))
    connected, code = await communicator.connect(timeout=30)
    return communicator, connected, code


async def _until(communicator: WebsocketCommunicator, needle: str, *, timeout: float = 30) -> str:
    """What the terminal showed, up to the first output holding ``needle``."""
    seen = ""
    while needle not in seen:
        message = await communicator.receive_output(timeout=timeout)
        if message.get("type") == "websocket.close":
            raise AssertionError(f"closed ({message.get('code')}) before {needle!r}; saw {seen!r}")
        seen += (
            message.get("bytes", b"").decode("utf-8", "replace") if message.get("bytes") else message.get("text", "")
        )
    return seen


async def _type(communicator: WebsocketCommunicator, text: str) -> None:
    await communicator.send_to(text_data=json.dumps({"type": "input", "data": text}))


@pytest.fixture
def own_chat(settings, tmp_path):
    def make():
        settings.CLAUDE_WORKDIR = tmp_path / "work"
        member = make_user()
        init_repo(tmp_path / "work" / str(member.pk))
        return member, make_session(owner=member), logged_in_client(user=member)

    return sync_to_async(make)


async def test_a_shell_in_the_folder_that_sees_nothing_else(fake_cli, rt, own_chat, tmp_path, monkeypatch, settings):
    monkeypatch.setenv("DJANGO_SECRET_KEY", "the-server-secret-value")
    secret = tmp_path / "secret-key.txt"
    secret.write_text("the-server-secret-value\n")
    member, chat, client = await own_chat()
    other = await sync_to_async(make_user)()
    other_folder = init_repo(Path(settings.CLAUDE_WORKDIR) / str(other.pk))

    terminal, connected, _code = await _open(rt, f"/ws/terminal/chat/{chat.id}/", client)
    assert connected
    await _type(terminal, "ls; git status; echo DONE-$((40+2))\n")
    shown = await _until(terminal, "DONE-42")
    assert "README.md" in shown and "On branch main" in shown

    await _type(terminal, f"cat {secret}; ls {other_folder}; ls {settings.DATA_DIR}; env; echo END-$((1+1))\n")
    shown = await _until(terminal, "END-2")
    assert shown.count("No such file or directory") >= 3
    assert "the-server-secret-value" not in shown.replace("echo", "")
    assert "DJANGO_SECRET_KEY" not in shown and "TERM=xterm-256color" in shown
    await terminal.disconnect()


async def test_it_survives_a_reconnect_with_its_scrollback_and_takes_a_resize(fake_cli, rt, own_chat):
    _member, chat, client = await own_chat()
    first, connected, _code = await _open(rt, f"/ws/terminal/chat/{chat.id}/", client)
    assert connected
    await _type(first, "echo PID-$$-SHOWN\n")
    shown = await _until(first, "-SHOWN\r\n")
    pid = shown.split("PID-")[-1].split("-SHOWN")[0]
    await first.disconnect()

    again, connected, _code = await _open(rt, f"/ws/terminal/chat/{chat.id}/", client)
    assert connected
    assert f"PID-{pid}-SHOWN" in await _until(again, f"PID-{pid}-SHOWN")  # the scrollback
    await again.send_to(text_data=json.dumps({"type": "resize", "cols": 123, "rows": 45}))
    await _type(again, "echo SAME-$$; stty size\n")
    shown = await _until(again, "45 123")
    assert f"SAME-{pid}" in shown  # the same shell
    await again.disconnect()


async def test_garbage_frames_get_a_notice_and_the_shell_goes_on(fake_cli, rt, own_chat):
    _member, chat, client = await own_chat()
    terminal, _connected, _code = await _open(rt, f"/ws/terminal/chat/{chat.id}/", client)
    for garbage in ("not json", "[]", '{"type": "resize", "cols": "wide"}', '{"type": "input", "data": 5}', "{" * 5000):
        await terminal.send_to(text_data=garbage)
        assert "could not read that frame" in await _until(terminal, "could not read that frame")
    await terminal.send_to(bytes_data=b"\x00\xff")
    assert "could not read that frame" in await _until(terminal, "could not read that frame")
    await _type(terminal, "echo STILL-$((2*3))\n")
    assert "STILL-6" in await _until(terminal, "STILL-6")
    await terminal.disconnect()


async def test_a_member_has_at_most_the_set_number_of_terminals(fake_cli, rt, own_chat, settings):
    settings.CLAUDE_MAX_TERMINALS_PER_MEMBER = 1
    member, chat, client = await own_chat()
    second_chat = await sync_to_async(make_session)(owner=member)
    first, connected, _code = await _open(rt, f"/ws/terminal/chat/{chat.id}/", client)
    assert connected
    second, _connected, _code = await _open(rt, f"/ws/terminal/chat/{second_chat.id}/", client)
    notice = json.loads(await second.receive_from(timeout=30))
    assert "CLAUDE_MAX_TERMINALS_PER_MEMBER = 1" in notice["text"] and "type exit" in notice["text"]
    assert (await second.receive_output(timeout=30))["code"] == 4429
    await first.disconnect()


async def test_no_terminal_for_who_may_not_work_there(fake_cli, rt, settings, tmp_path):
    def make():
        team = init_repo(tmp_path / "team")
        settings.CLAUDE_PROJECTS = {"team": team}
        ProjectAccess.objects.create(project="team", everyone=True)
        member = make_user()
        chat = make_session(owner=member)
        chat.project, chat.workdir = "team", str(team)
        chat.save()
        return chat, logged_in_client(user=member), logged_in_client(user=make_user())

    chat, member, stranger = await sync_to_async(make)()
    _socket, connected, code = await _open(rt, f"/ws/terminal/chat/{chat.id}/", member)
    assert not connected and code == 4403
    _socket, connected, code = await _open(rt, f"/ws/terminal/chat/{chat.id}/", stranger)
    assert not connected and code == 4404


async def test_an_idle_terminal_ends(fake_cli, rt, own_chat, settings):
    settings.CLAUDE_TERMINAL_IDLE_SECONDS = 1
    _member, chat, client = await own_chat()
    terminal, connected, _code = await _open(rt, f"/ws/terminal/chat/{chat.id}/", client)
    assert connected
    shown = await _until(terminal, "Reload the page for a new one")
    assert "ended after 1 seconds without use" in shown


async def test_a_paste_the_shell_does_not_read_waits_without_stalling_the_server(fake_cli, rt, own_chat):
    _member, chat, client = await own_chat()
    terminal, connected, _code = await _open(rt, f"/ws/terminal/chat/{chat.id}/", client)
    assert connected
    await _type(terminal, "sleep 2; wc -c | sed s/^/COUNTED-/\n")
    # Far more than a terminal's buffers hold, while the shell reads nothing: it all arrives, later.
    line = "x" * 59 + "\n"
    for _ in range(4):
        await _type(terminal, line * 1000)
    other, connected, _code = await _open(rt, f"/ws/terminal/chat/{chat.id}/", client)
    assert connected  # the server still serves meanwhile
    await _type(terminal, "\x04")
    assert "COUNTED-240000" in await _until(terminal, "COUNTED-240000")
    await other.disconnect()
    await terminal.disconnect()


async def test_a_flood_of_output_waits_for_the_page_and_all_of_it_arrives(fake_cli, rt, own_chat):
    _member, chat, client = await own_chat()
    terminal, connected, _code = await _open(rt, f"/ws/terminal/chat/{chat.id}/", client)
    assert connected
    await _type(terminal, "yes flood | head -c 6000000; echo FLOODED-$((9*9))\n")
    received = 0
    while not await terminal.receive_nothing(timeout=2):
        received += len((await terminal.receive_output(timeout=60)).get("bytes") or b"")
    assert received < 6_000_000  # the window (2 MB) and no more, until the page says it wrote it
    tail = ""
    while "FLOODED-81" not in tail:
        await terminal.send_to(text_data=json.dumps({"type": "ack", "bytes": received}))
        chunk = (await terminal.receive_output(timeout=60)).get("bytes") or b""
        received += len(chunk)
        tail = (tail + chunk.decode("utf-8", "replace"))[-200:]
    assert received > 6_000_000  # all of it reached the page, none was dropped
    await terminal.disconnect()


async def test_the_files_pages_watch_is_only_for_who_may_see_the_folder(fake_cli, rt, own_chat):
    _member, chat, client = await own_chat()
    stranger = await sync_to_async(logged_in_client)(user=await sync_to_async(make_user)())
    watch, connected, _code = await _open(rt, f"/ws/workspace/chat/{chat.id}/", client)
    assert connected
    await watch.disconnect()
    _socket, connected, code = await _open(rt, f"/ws/workspace/chat/{chat.id}/", stranger)
    assert not connected and code == 4404
