"""The offline Messages-API stand-in (devtools/stub_api.py), mostly through the REAL Claude Code CLI
driven by a LiveSession (drivers/claude/live.py) as the chats drive it, plus what the driver must
agree on with the real CLI: its words when it fails, where it writes its transcripts."""

from __future__ import annotations

import asyncio
import json
import os
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from devtools.stub_api import StubServer
from drivers import claude as cli
from drivers.claude import (
    Exit,
    Garbage,
    Init,
    LiveSession,
    LiveSpec,
    Permission,
    Result,
    Sent,
    SessionFailed,
    Text,
    TextDelta,
    ToolResult,
    ToolUse,
)
from tests.conftest import ClaudeEnv
from tests.drivers.claude.fakes import Handler
from tests.drivers.claude.sessions import Sessions
from tests.processes import assert_all_gone

Start = Callable[..., Awaitable[LiveSession]]


@pytest.fixture
def cli_env(claude_env: ClaudeEnv) -> dict[str, str]:
    """All the CLI gets of the server's environment (with the empty HOME every real-CLI test gets)."""
    return {"PATH": os.environ["PATH"], **claude_env.env}


@pytest.fixture
async def start(claude_env: ClaudeEnv, cli_env: dict[str, str]) -> AsyncIterator[Start]:
    """Start a session of the real CLI (a new one unless ``resume``); all are closed at the end."""
    sessions = Sessions()

    async def started(
        *,
        session_id: str | None = None,
        resume: bool = False,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        **options: Any,
    ) -> LiveSession:
        return await sessions.start(
            LiveSpec(
                cli=str(claude_env.cli),
                cwd=str(cwd or claude_env.workdir),
                session_id=session_id or str(uuid.uuid4()),
                resume=resume,
                env=cli_env if env is None else env,
                **options,
            ),
            within=60,
        )

    yield started
    await sessions.close_all()


async def run(session: LiveSession, prompt: str, handler: Handler | None = None) -> list[cli.Event]:
    async with asyncio.timeout(60):
        return [event async for event in session.turn(prompt, handler or Handler())]


def of(events: list[cli.Event], kind: type) -> list[Any]:
    return [event for event in events if isinstance(event, kind)]


def result_of(events: list[cli.Event]) -> Result:
    [result] = of(events, Result)
    assert events[-1] is result, events
    return result


# ---------------------------------------------------------------------------------------
# The stand-in on its own


def _post(url: str, body: bytes, path: str = "/v1/messages?beta=true") -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url + path, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_the_stand_in_answers_plain_http(stub_api: StubServer) -> None:
    with urllib.request.urlopen(stub_api.url + "/", timeout=5) as response:
        assert json.loads(response.read())["stand_in"] is True

    body = {"model": "x", "max_tokens": 10, "messages": [{"role": "user", "content": "echo: plain answer"}]}
    status, message = _post(stub_api.url, json.dumps(body).encode())
    assert status == 200
    assert message["content"] == [{"type": "text", "text": "plain answer"}]
    assert message["stop_reason"] == "end_turn"

    status, counted = _post(stub_api.url, json.dumps(body).encode(), "/v1/messages/count_tokens")
    assert status == 200 and counted["input_tokens"] > 0

    assert _post(stub_api.url, b"{not json")[0] == 400
    assert _post(stub_api.url, b"{}", "/v2/other")[0] == 404


def test_a_write_request_resolves_relative_paths_against_the_sessions_cwd(stub_api: StubServer) -> None:
    body = {
        "stream": False,
        "system": [{"type": "text", "text": "Primary working directory: /srv/project\n"}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "<system-reminder>ignore me</system-reminder>"},
                    {"type": "text", "text": "write notes/a.txt: some text"},
                ],
            }
        ],
    }
    _, message = _post(stub_api.url, json.dumps(body).encode())
    [block] = message["content"]
    assert block["type"] == "tool_use" and block["name"] == "Write"
    assert block["input"] == {"file_path": "/srv/project/notes/a.txt", "content": "some text\n"}


def test_the_stand_in_keeps_only_the_latest_requests() -> None:
    server = StubServer(keep_requests=2).start()
    try:
        for word in ("one", "two", "three"):
            body = {"messages": [{"role": "user", "content": f"echo: {word}"}]}
            assert _post(server.url, json.dumps(body).encode())[0] == 200
        assert [request["plan"].text for request in server.requests] == ["two", "three"]
    finally:
        server.stop()


# ---------------------------------------------------------------------------------------
# The real CLI against the stand-in

real_cli = pytest.mark.real_cli


@real_cli
async def test_a_plain_turn(start: Start, claude_env: ClaudeEnv) -> None:
    session = await start()
    session_id = session.spec.session_id
    events = await run(session, "echo: hello there")
    assert isinstance(events[0], Sent)  # the message is on the CLI's stdin; then the CLI speaks
    assert isinstance(events[1], Init) and events[1].session_id == session_id
    assert events[1].cwd == str(claude_env.workdir)
    assert of(events, Text) == [Text(text="hello there")]
    assert "".join(delta.text for delta in of(events, TextDelta)) == "hello there"
    result = result_of(events)
    assert not result.is_error and result.text == "hello there" and result.session_id == session_id
    assert result.input_tokens > 0 and result.output_tokens > 0
    assert not of(events, Garbage) and not of(events, Exit)
    assert session.alive
    await session.close()
    assert claude_env.transcript(session_id).is_file()


@real_cli
async def test_a_session_remembers_earlier_turns_warm_and_resumed(start: Start) -> None:
    session = await start()
    pid = session.pid
    assert result_of(await run(session, "My name is Ada")).text == "Nice to meet you, Ada."
    assert result_of(await run(session, "What is my name?")).text == "Your name is Ada."
    assert session.pid == pid and session.turns == 2  # one process served both
    await session.close()
    assert_all_gone([pid])

    resumed = await start(session_id=session.spec.session_id, resume=True)
    assert resumed.pid != pid
    assert result_of(await run(resumed, "What is my name?")).text == "Your name is Ada."
    other = await start()
    assert result_of(await run(other, "What is my name?")).text == "I don't know your name yet."


@real_cli
async def test_write_with_accept_edits_creates_the_file_without_asking(start: Start, claude_env: ClaudeEnv) -> None:
    session = await start(permission_mode="acceptEdits")
    handler = Handler()
    events = await run(session, "write notes.txt: hello from the test", handler)
    target = claude_env.workdir / "notes.txt"
    assert target.read_text() == "hello from the test\n"

    [use] = of(events, ToolUse)
    assert use.name == "Write" and use.input["file_path"] == str(target)
    [done] = of(events, ToolResult)
    assert done.tool_use_id == use.id and not done.is_error
    kinds = [type(e) for e in events if isinstance(e, ToolUse | ToolResult | Result)]
    assert kinds == [ToolUse, ToolResult, Result]
    assert not result_of(events).is_error
    # Not asked; the file hooks ran around the call.
    assert [(kind, args[0], args[-1]) for kind, args in handler.asked] == [
        ("before", "Write", use.id),
        ("after", "Write", use.id),
    ]


@real_cli
async def test_the_hook_before_a_file_tool_refuses_it_and_the_model_reads_why(
    start: Start, claude_env: ClaudeEnv
) -> None:
    session = await start(permission_mode="acceptEdits")
    events = await run(session, "write notes.txt: not now", Handler(refuse="Another task is editing notes.txt."))
    assert not (claude_env.workdir / "notes.txt").exists()
    [refused] = of(events, ToolResult)
    assert refused.is_error and "Another task is editing notes.txt." in refused.content
    assert not result_of(events).is_error


@real_cli
async def test_in_default_mode_a_write_asks_and_the_answer_decides(start: Start, claude_env: ClaudeEnv) -> None:
    session = await start()
    target = claude_env.workdir / "notes.txt"
    denying = Handler(Permission(allow=False, message="Not this file."))
    events = await run(session, "write notes.txt: should not exist", denying)
    assert not target.exists()
    [use] = of(events, ToolUse)
    # The hook before a file tool runs first, then the person is asked.
    assert [kind for kind, _args in denying.asked] == ["before", "permission"]
    tool, tool_input, _suggestions, tool_use_id = denying.asked[1][1]
    assert (tool, tool_input["file_path"], tool_use_id) == ("Write", str(target), use.id)
    [refused] = of(events, ToolResult)
    assert refused.tool_use_id == use.id and refused.is_error and "Not this file." in refused.content
    # The model is told and answers; the turn itself succeeds.
    assert not result_of(events).is_error

    allowing = Handler(Permission(allow=True))
    await run(session, "write notes.txt: now it may", allowing)
    assert target.read_text() == "now it may\n"
    assert [kind for kind, _args in allowing.asked] == ["before", "permission", "after"]


@real_cli
async def test_bash_with_accept_edits(start: Start, claude_env: ClaudeEnv) -> None:
    # A read-only command runs without asking; so does one that creates a file in the work dir
    # (acceptEdits counts that as an edit).
    session = await start(permission_mode="acceptEdits")
    handler = Handler(Permission(allow=False))
    echo = await run(session, "run: echo hi", handler)
    [use] = of(echo, ToolUse)
    assert use.name == "Bash" and use.input["command"] == "echo hi"
    assert of(echo, ToolResult) == [ToolResult(tool_use_id=use.id, content="hi", is_error=False)]
    assert result_of(echo).text == "Done. The tool said: hi"

    touch = await run(session, "run: touch made.txt", handler)
    assert (claude_env.workdir / "made.txt").exists()
    assert not of(touch, ToolResult)[0].is_error
    assert handler.asked == []


@real_cli
async def test_bash_that_changes_files_asks_in_default_mode(start: Start, claude_env: ClaudeEnv) -> None:
    session = await start()
    handler = Handler(Permission(allow=False))
    events = await run(session, "run: touch made.txt", handler)
    assert not (claude_env.workdir / "made.txt").exists()
    assert [(kind, args[0]) for kind, args in handler.asked] == [("permission", "Bash")]  # no file tool: no hook
    assert of(events, ToolResult)[0].is_error


@real_cli
async def test_an_interrupt_stops_the_turn_and_the_process_serves_the_next(start: Start) -> None:
    session = await start()
    pid = session.pid
    seen: list[cli.Event] = []
    async with asyncio.timeout(60):
        async for event in session.turn("slow 20", Handler()):
            seen.append(event)
            if isinstance(event, TextDelta) and len(of(seen, TextDelta)) == 1:
                assert await session.interrupt()
    result_of(seen)  # the turn ended with its result, long before the 20 s answer was through
    assert "(end of slow answer)" not in "".join(delta.text for delta in of(seen, TextDelta))
    assert session.alive and session.pid == pid
    assert result_of(await run(session, "echo: still here")).text == "still here"


@real_cli
async def test_the_same_session_id_twice_is_already_in_use(start: Start) -> None:
    first = await start()
    assert result_of(await run(first, "echo: one")).text == "one"
    await first.close()
    session_id = first.spec.session_id
    with pytest.raises(SessionFailed) as failed:  # when it starts, before any turn
        await start(session_id=session_id)
    end = failed.value.exit
    assert end.returncode != 0
    assert "already in use" in end.stderr and session_id in end.stderr
    assert cli.Outcome(returncode=end.returncode, stderr=end.stderr).failure().kind == cli.FailureKind.SESSION_IN_USE


@real_cli
async def test_resuming_an_unknown_session_finds_no_conversation(start: Start) -> None:
    session_id = str(uuid.uuid4())
    with pytest.raises(SessionFailed) as failed:
        await start(session_id=session_id, resume=True)
    end = failed.value.exit
    assert f"No conversation found with session ID: {session_id}" in end.stderr
    assert cli.Outcome(returncode=end.returncode, stderr=end.stderr).failure().kind == cli.FailureKind.SESSION_MISSING


@real_cli
async def test_without_an_api_key_in_its_spec_the_cli_is_not_logged_in(
    start: Start, cli_env: dict[str, str], tmp_path: Path
) -> None:
    # The server's own environment has the key (the fixture set it): it must not leak to the CLI.
    assert os.environ["ANTHROPIC_API_KEY"]
    env = {k: v for k, v in cli_env.items() if k != "ANTHROPIC_API_KEY"}
    env["CLAUDE_CONFIG_DIR"] = str(tmp_path / "empty-config")
    session = await start(env=env)
    events = await run(session, "echo: hi")
    # In stream-json the message comes as the answer's text, not as a plain line or on stderr.
    assert any("Not logged in" in t.text for t in of(events, Text))
    result = result_of(events)
    assert result.is_error and "Not logged in" in result.text
    assert cli.Outcome(result=result).failure().kind == cli.FailureKind.NOT_LOGGED_IN


@real_cli
async def test_reported_output_tokens_come_from_the_stand_in(start: Start) -> None:
    assert result_of(await run(await start(), "tokens 4321")).output_tokens == 4321


@real_cli
async def test_a_slow_answer_streams_as_text_deltas(start: Start) -> None:
    session = await start()
    arrivals: list[tuple[float, cli.Event]] = []
    async with asyncio.timeout(60):
        async for event in session.turn("slow 1", Handler()):
            arrivals.append((time.monotonic(), event))
    deltas = [(at, e) for at, e in arrivals if isinstance(e, TextDelta)]
    [whole] = [e for _, e in arrivals if isinstance(e, Text)]
    assert len(deltas) > 5
    assert "".join(e.text for _, e in deltas) == whole.text
    assert whole.text.startswith("Slow answer: word1 ") and whole.text.endswith("(end of slow answer)")
    assert deltas[-1][0] - deltas[0][0] > 0.5  # spread over the second, not sent at once


@real_cli
async def test_closing_during_a_turn_ends_the_cli_and_what_it_started(start: Start, claude_env: ClaudeEnv) -> None:
    session = await start(permission_mode="acceptEdits")
    # (The CLI refuses a long `sleep`: tail waits as long.)
    command = "tail -f /dev/null & echo $! > a.pid; setsid tail -f /dev/null & echo $! > b.pid; wait"
    turn = asyncio.create_task(run(session, f"run: {command}"))
    pid_files = [claude_env.workdir / "a.pid", claude_env.workdir / "b.pid"]
    async with asyncio.timeout(60):
        while not all(path.is_file() and path.read_text().strip() for path in pid_files):
            await asyncio.sleep(0.05)
        processes = [session.pid, *(int(path.read_text()) for path in pid_files)]
        await session.close()
        events = await turn
    assert isinstance(events[-1], Exit) and not of(events, Result)
    assert_all_gone(processes)
    # The stand-in shrugs off the dropped connection and goes on answering.
    assert result_of(await run(await start(), "echo: still here")).text == "still here"


@real_cli
@pytest.mark.parametrize("name", ["emoji 🎉 dir", "symlink", "cut at 200", "exactly 200"])
async def test_transcript_path_is_where_the_cli_writes(
    start: Start, claude_env: ClaudeEnv, tmp_path: Path, name: str
) -> None:
    base = tmp_path / "dirs"
    base.mkdir()
    prefix = len(cli.encode_project_dir(f"{base}/"))
    if name == "symlink":
        (base / "real").mkdir()
        cwd = base / "link"
        cwd.symlink_to(base / "real")
    elif name == "cut at 200":
        cwd = base / ("c" * (230 - prefix))
    elif name == "exactly 200":
        cwd = base / ("e" * (200 - prefix))
    else:
        cwd = base / name
    if not cwd.exists():
        cwd.mkdir()
    session = await start(cwd=cwd)
    assert result_of(await run(session, "echo: hi")).text == "hi"
    await session.close()
    expected = cli.transcript_path(claude_env.config_dir, cwd, session.spec.session_id)
    written = list((claude_env.config_dir / "projects").glob(f"*/{session.spec.session_id}.jsonl"))
    assert written == [expected]
