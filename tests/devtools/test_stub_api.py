"""The offline Messages-API stand-in (chat/stub_api.py), mostly through the REAL Claude Code CLI
driven by chat.cli.run_turn, plus what the driver must agree on with the real CLI."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from devtools.stub_api import StubServer
from drivers import claude as cli
from drivers.claude import Exit, Garbage, Init, Notice, Result, Text, TextDelta, ToolResult, ToolUse, TurnSpec
from tests.conftest import ClaudeEnv
from tests.processes import assert_all_gone


@pytest.fixture
def cli_env(claude_env: ClaudeEnv) -> dict[str, str]:
    """The CLI's whole environment (with the empty HOME the fixture gives every real-CLI test)."""
    return {"PATH": os.environ["PATH"], **claude_env.env}


async def run(claude_env: ClaudeEnv, prompt: str, *, env: dict[str, str], session_id: str | None = None,
              resume: bool = False, cwd: Path | None = None, **flags: Any) -> list[cli.Event]:
    flags.setdefault("partial_messages", False)
    argv = cli.build_argv(str(claude_env.cli), session_id=session_id or str(uuid.uuid4()), resume=resume, **flags)
    spec = TurnSpec(argv=argv, prompt=prompt, cwd=str(cwd or claude_env.workdir), env=env)
    async with asyncio.timeout(60):
        return [event async for event in cli.run_turn(spec)]


def of(events: list[cli.Event], kind: type) -> list[Any]:
    return [event for event in events if isinstance(event, kind)]


def result_of(events: list[cli.Event]) -> Result:
    [result] = of(events, Result)
    return result


def exit_of(events: list[cli.Event]) -> Exit:
    assert isinstance(events[-1], Exit), events
    return events[-1]


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
    body = {"stream": False, "system": [{"type": "text", "text": "Primary working directory: /srv/project\n"}],
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "<system-reminder>ignore me</system-reminder>"},
                {"type": "text", "text": "write notes/a.txt: some text"}]}]}
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
async def test_a_plain_turn(claude_env: ClaudeEnv, cli_env: dict[str, str]) -> None:
    session_id = str(uuid.uuid4())
    events = await run(claude_env, "echo: hello there", session_id=session_id, env=cli_env)
    assert isinstance(events[0], Init) and events[0].session_id == session_id
    assert events[0].cwd == str(claude_env.workdir)
    assert of(events, Text) == [Text(text="hello there")]
    result = result_of(events)
    assert not result.is_error and result.text == "hello there" and result.session_id == session_id
    assert result.input_tokens > 0 and result.output_tokens > 0
    assert exit_of(events) == Exit(returncode=0, stderr="")
    assert claude_env.transcript(session_id).is_file()
    assert not of(events, Garbage)


@real_cli
async def test_a_resumed_session_remembers_the_earlier_turn(claude_env: ClaudeEnv, cli_env: dict[str, str]) -> None:
    session_id = str(uuid.uuid4())
    first = await run(claude_env, "My name is Ada", session_id=session_id, env=cli_env)
    assert result_of(first).text == "Nice to meet you, Ada."
    second = await run(claude_env, "What is my name?", session_id=session_id, resume=True, env=cli_env)
    assert result_of(second).text == "Your name is Ada."
    other = await run(claude_env, "What is my name?", env=cli_env)
    assert result_of(other).text == "I don't know your name yet."


@real_cli
async def test_write_with_accept_edits_creates_the_file(claude_env: ClaudeEnv, cli_env: dict[str, str]) -> None:
    events = await run(claude_env, "write notes.txt: hello from the test", permission_mode="acceptEdits", env=cli_env)
    target = claude_env.workdir / "notes.txt"
    assert target.read_text() == "hello from the test\n"

    [use] = of(events, ToolUse)
    assert use.name == "Write" and use.input["file_path"] == str(target)
    [done] = of(events, ToolResult)
    assert done.tool_use_id == use.id and not done.is_error
    kinds = [type(e) for e in events if isinstance(e, ToolUse | ToolResult | Result | Exit)]
    assert kinds == [ToolUse, ToolResult, Result, Exit]
    assert not result_of(events).is_error
    assert "permission_denied" not in [n.subtype for n in of(events, Notice)]
    assert exit_of(events).returncode == 0


@real_cli
async def test_write_in_default_mode_is_refused(claude_env: ClaudeEnv, cli_env: dict[str, str]) -> None:
    events = await run(claude_env, "write notes.txt: should not exist", env=cli_env)
    assert not (claude_env.workdir / "notes.txt").exists()

    [use] = of(events, ToolUse)
    [denied] = [n for n in of(events, Notice) if n.subtype == "permission_denied"]
    assert denied.data["tool_name"] == "Write" and denied.data["tool_use_id"] == use.id
    [refused] = of(events, ToolResult)
    assert refused.tool_use_id == use.id and refused.is_error
    # The model is told and answers; the turn itself succeeds.
    assert not result_of(events).is_error
    assert exit_of(events).returncode == 0


@real_cli
async def test_bash_with_accept_edits(claude_env: ClaudeEnv, cli_env: dict[str, str]) -> None:
    # A read-only command runs; so does one that creates a file in the work dir (acceptEdits
    # counts that as an edit).
    echo = await run(claude_env, "run: echo hi", permission_mode="acceptEdits", env=cli_env)
    [use] = of(echo, ToolUse)
    assert use.name == "Bash" and use.input["command"] == "echo hi"
    assert of(echo, ToolResult) == [ToolResult(tool_use_id=use.id, content="hi", is_error=False)]
    assert result_of(echo).text == "Done. The tool said: hi"

    touch = await run(claude_env, "run: touch made.txt", permission_mode="acceptEdits", env=cli_env)
    assert (claude_env.workdir / "made.txt").exists()
    assert not of(touch, ToolResult)[0].is_error


@real_cli
async def test_bash_that_changes_files_is_refused_in_default_mode(claude_env: ClaudeEnv, cli_env: dict[str, str]) -> None:
    events = await run(claude_env, "run: touch made.txt", env=cli_env)
    assert not (claude_env.workdir / "made.txt").exists()
    assert [n.data["tool_name"] for n in of(events, Notice) if n.subtype == "permission_denied"] == ["Bash"]
    assert of(events, ToolResult)[0].is_error


@real_cli
async def test_the_same_session_id_twice_is_already_in_use(claude_env: ClaudeEnv, cli_env: dict[str, str]) -> None:
    session_id = str(uuid.uuid4())
    assert exit_of(await run(claude_env, "echo: one", session_id=session_id, env=cli_env)).returncode == 0
    again = await run(claude_env, "echo: two", session_id=session_id, env=cli_env)
    end = exit_of(again)
    assert end.returncode != 0
    assert "already in use" in end.stderr and session_id in end.stderr
    assert not of(again, Result)


@real_cli
async def test_resuming_an_unknown_session_finds_no_conversation(claude_env: ClaudeEnv, cli_env: dict[str, str]) -> None:
    session_id = str(uuid.uuid4())
    events = await run(claude_env, "echo: hi", session_id=session_id, resume=True, env=cli_env)
    end = exit_of(events)
    assert end.returncode != 0
    assert f"No conversation found with session ID: {session_id}" in end.stderr
    result = result_of(events)
    assert result.is_error and any("No conversation found" in e for e in result.errors)


@real_cli
async def test_without_an_api_key_the_cli_is_not_logged_in(claude_env: ClaudeEnv, cli_env: dict[str, str],
                                                          monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # run_turn adds TurnSpec.env to the server's environment, so the key must leave that too.
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    env = {k: v for k, v in cli_env.items() if k != "ANTHROPIC_API_KEY"}
    env["CLAUDE_CONFIG_DIR"] = str(tmp_path / "empty-config")
    events = await run(claude_env, "echo: hi", env=env)
    assert exit_of(events).returncode != 0
    # In stream-json the message comes as the answer's text, not as a plain line or on stderr.
    assert any("Not logged in" in t.text for t in of(events, Text))
    result = result_of(events)
    assert result.is_error and "Not logged in" in result.text


@real_cli
async def test_reported_output_tokens_come_from_the_stand_in(claude_env: ClaudeEnv, cli_env: dict[str, str]) -> None:
    assert result_of(await run(claude_env, "tokens 4321", env=cli_env)).output_tokens == 4321


@real_cli
async def test_a_slow_answer_streams_as_text_deltas(claude_env: ClaudeEnv, cli_env: dict[str, str]) -> None:
    arrivals: list[tuple[float, cli.Event]] = []
    argv = cli.build_argv(str(claude_env.cli), session_id=str(uuid.uuid4()), resume=False)
    async with asyncio.timeout(60):
        async for event in cli.run_turn(TurnSpec(argv=argv, prompt="slow 1", cwd=str(claude_env.workdir),
                                                 env=cli_env)):
            arrivals.append((time.monotonic(), event))
    deltas = [(at, e) for at, e in arrivals if isinstance(e, TextDelta)]
    [whole] = [e for _, e in arrivals if isinstance(e, Text)]
    assert len(deltas) > 5
    assert "".join(e.text for _, e in deltas) == whole.text
    assert whole.text.startswith("Slow answer: word1 ") and whole.text.endswith("(end of slow answer)")
    assert deltas[-1][0] - deltas[0][0] > 0.5  # spread over the second, not sent at once


@real_cli
async def test_leaving_a_real_turn_early_ends_the_cli(claude_env: ClaudeEnv, cli_env: dict[str, str]) -> None:
    pids: list[int] = []
    argv = cli.build_argv(str(claude_env.cli), session_id=str(uuid.uuid4()), resume=False)
    spec = TurnSpec(argv=argv, prompt="slow 20", cwd=str(claude_env.workdir), env=cli_env)
    async with asyncio.timeout(30):
        async with contextlib.aclosing(cli.run_turn(spec, on_spawn=pids.append)) as events:
            async for event in events:
                if isinstance(event, TextDelta):
                    break
    [pid] = pids
    assert_all_gone([pid], pid)
    # The stand-in shrugs off the dropped connection and goes on answering.
    assert result_of(await run(claude_env, "echo: still here", env=cli_env)).text == "still here"


@real_cli
@pytest.mark.parametrize("name", ["emoji 🎉 dir", "symlink", "cut at 200", "exactly 200"])
async def test_transcript_path_is_where_the_cli_writes(claude_env: ClaudeEnv, cli_env: dict[str, str], tmp_path: Path,
                                                       name: str) -> None:
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
    session_id = str(uuid.uuid4())
    events = await run(claude_env, "echo: hi", session_id=session_id, cwd=cwd, env=cli_env)
    assert exit_of(events).returncode == 0
    expected = cli.transcript_path(claude_env.config_dir, cwd, session_id)
    written = list((claude_env.config_dir / "projects").glob(f"*/{session_id}.jsonl"))
    assert written == [expected]
