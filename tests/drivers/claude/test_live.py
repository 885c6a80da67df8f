"""Turns of a LiveSession (drivers/claude/live.py) against fake ``claude`` programs speaking the
control protocol (tests/drivers/claude/fakes.py): events, argv, stdin, environment, huge lines,
permission prompts and hooks. How sessions end is in test_live_ending.py; the real CLI is driven
the same way in tests/devtools/test_stub_api.py.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from drivers.claude import (
    Exit,
    Init,
    Permission,
    Result,
    Sent,
    Text,
    TextDelta,
    ToolResult,
    ToolUse,
    Unknown,
)
from tests.drivers.claude.fakes import ANSWER, SID, Handler, Start, records, turn
from tests.processes import assert_all_gone, running

# ---------------------------------------------------------------------------------------
# Turns


async def test_a_turn_gives_its_events_and_ends_with_a_result(start: Start) -> None:
    session = await start("""\
        init()
        out({"type": "stream_event", "uuid": "u1", "session_id": msg["session_id"], "event": {
             "type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Wri"}}})
        out({"type": "assistant", "message": {"model": "fake", "content": [
            {"type": "text", "text": "Writing it."},
            {"type": "tool_use", "id": "toolu_1", "name": "Write", "input": {"file_path": "a.txt"}}]}})
        out({"type": "user", "message": {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "written"}]}})
        result("All done.")
    """)
    events = await turn(session, sent=True)
    assert events == [
        Sent(),  # the message is on the CLI's stdin: the app goes on with what it does meanwhile
        Init(session_id=SID, cwd=session.spec.cwd, model="fake"),
        TextDelta(text="Wri"),
        Text(text="Writing it."),
        ToolUse(id="toolu_1", name="Write", input={"file_path": "a.txt"}),
        ToolResult(tool_use_id="toolu_1", content="written", is_error=False),
        Result(
            is_error=False,
            subtype="success",
            text="All done.",
            session_id=SID,
            duration_ms=5,
            total_cost_usd=0.001,
            input_tokens=7,
            output_tokens=3,
        ),
    ]
    assert session.alive


async def test_later_turns_run_on_the_same_process(start: Start, tmp_path: Path) -> None:
    session = await start()
    pid = session.pid
    for word in ("one", "two", "three"):
        assert Text(text=f"hi {word}") in await turn(session, word)
        assert session.pid == pid and running(pid)
    assert session.turns == 3
    assert [m["message"]["content"] for m in records(tmp_path, "stdin") if m["type"] == "user"] == [
        "one",
        "two",
        "three",
    ]
    assert len(records(tmp_path, "argv")) == 1  # started once


async def test_a_new_session_is_created_and_a_known_one_resumed(start: Start, tmp_path: Path) -> None:
    await start()
    await start(resume=True, name="claude-2")
    created, resumed = records(tmp_path, "argv")
    assert f"--session-id={SID}" in created and not any(arg.startswith("--resume") for arg in created)
    assert f"--resume={SID}" in resumed and not any(arg.startswith("--session-id") for arg in resumed)
    for argv in (created, resumed):
        assert argv[argv.index("--input-format") + 1] == "stream-json"
        assert argv[argv.index("--output-format") + 1] == "stream-json"


def flag(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


async def test_the_specs_permissions_tools_and_model_become_the_clis_flags(start: Start, tmp_path: Path) -> None:
    await start(permission_mode="acceptEdits", allowed_tools=("Read", "Bash(git log:*)"), model="sonnet")
    await start(name="claude-2", permission_mode="acceptEdits", skip_permissions=True)
    await start(name="claude-3")
    asking, skipping, plain = records(tmp_path, "argv")
    assert flag(asking, "--permission-mode") == "acceptEdits"
    assert flag(asking, "--allowedTools") == "Read,Bash(git log:*)"
    # As one word: no model name can ever be read as a flag of its own.
    assert "--model=sonnet" in asking and "--model" not in asking
    # Prompts come back over the control protocol, as can_use_tool requests.
    assert flag(asking, "--permission-prompt-tool") == "stdio"
    # Skipping permissions is a mode of its own, and nothing is asked.
    assert flag(skipping, "--permission-mode") == "bypassPermissions"
    assert "--permission-prompt-tool" not in skipping
    assert "--permission-mode" not in plain and "--allowedTools" not in plain
    assert not any(arg.startswith("--model") for arg in plain)
    for argv in (asking, skipping, plain):
        assert "--include-partial-messages" in argv  # text streams as it is written
        assert "--setting-sources=" in argv  # no settings file of the machine's or the project's


async def test_the_message_goes_to_stdin_never_to_argv(start: Start, tmp_path: Path) -> None:
    session = await start()
    prompt = "--dangerously-skip-permissions\nhello 'world' $(touch pwned) ünïcode 🎉\n\nlast line"
    await turn(session, prompt)
    [sent] = [m for m in records(tmp_path, "stdin") if m["type"] == "user"]
    assert sent["message"] == {"role": "user", "content": prompt}
    [argv] = records(tmp_path, "argv")
    assert not any("hello" in arg or "pwned" in arg or arg == "--dangerously-skip-permissions" for arg in argv)
    assert records(tmp_path, "cwd") == [str(tmp_path)]
    assert not (tmp_path / "pwned").exists()


async def test_only_the_specs_environment_reaches_the_cli(
    start: Start, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The server's own variables (its secrets, its database) must not reach the agent.
    monkeypatch.setenv("SERVER_SECRET", "s3cret")
    monkeypatch.setenv("FAKE_SETTING", "the server's")
    # What the SDK sets is the SDK's, even where the server has a value of its own.
    monkeypatch.setenv("CLAUDE_CODE_ENTRYPOINT", "cli")
    monkeypatch.setenv("PWD", "/somewhere/else")
    await start(env={"FAKE_SETTING": "on"})
    [env] = records(tmp_path, "env")
    assert env["FAKE_SETTING"] == "on"
    assert env["PATH"] == os.environ["PATH"]
    assert "SERVER_SECRET" not in env
    assert env["CLAUDE_CODE_ENTRYPOINT"] == "sdk-py" and env["PWD"] == str(tmp_path)
    # Nothing else: only the SDK's own variables (and the locale the fake's Python sets itself).
    assert {name for name in env if not name.startswith("CLAUDE_")} <= {"FAKE_SETTING", "PATH", "PWD", "LC_CTYPE"}


async def test_a_line_of_several_megabytes_comes_through_intact(start: Start) -> None:
    session = await start("""\
        big = "".join(chr(0x61 + i % 26) for i in range(26)) * 200_000 + "é🎉 end"
        out({"type": "user", "message": {"content": [{"type": "tool_result", "tool_use_id": "toolu_big", "content": big}]}})
        result()
    """)
    expected = "abcdefghijklmnopqrstuvwxyz" * 200_000 + "é🎉 end"
    events = await turn(session)
    assert [type(e) for e in events] == [ToolResult, Result]
    big = events[0]
    assert isinstance(big, ToolResult) and big.tool_use_id == "toolu_big"
    assert len(big.content) == len(expected) and big.content == expected
    assert session.alive


async def test_lines_that_arrive_in_pieces_are_joined_even_inside_a_character(start: Start) -> None:
    line = (
        json.dumps(
            {
                "type": "assistant",
                "message": {"model": "fake", "content": [{"type": "text", "text": "héllo 🎉 wörld"}]},
            },
            ensure_ascii=False,
        ).encode()
        + b"\n"
    )
    cut = line.index("🎉".encode()) + 2  # in the middle of the emoji's four bytes
    session = await start(f"""\
        for piece in ({line[:10]!r}, {line[10:cut]!r}, {line[cut:-1]!r}, {line[-1:]!r}):
            sys.stdout.buffer.write(piece); sys.stdout.flush(); time.sleep(0.05)
        result()
    """)
    assert await turn(session) == [
        Text(text="héllo 🎉 wörld"),
        Result(
            is_error=False,
            subtype="success",
            text="done",
            session_id=SID,
            duration_ms=5,
            total_cost_usd=0.001,
            input_tokens=7,
            output_tokens=3,
        ),
    ]


async def test_plenty_of_stderr_does_not_block_the_cli(start: Start) -> None:
    # 1 MB of stderr before any answer: the CLI would block for ever if it were not read alongside.
    session = await start('sys.stderr.write("noise " * 200_000 + "\\n"); sys.stderr.flush(); ' + ANSWER)
    assert isinstance((await turn(session))[-1], Result)
    assert isinstance((await turn(session))[-1], Result)


async def test_a_line_over_the_limit_ends_the_session_with_a_clear_failure(start: Start) -> None:
    session = await start('init(); say("x" * 300_000); result()', max_line_bytes=100_000)
    pid = session.pid
    events = await turn(session)
    assert events[0] == Init(session_id=SID, cwd=session.spec.cwd, model="fake")
    end = events[-1]
    assert isinstance(end, Exit) and "maximum buffer size" in end.stderr
    assert not session.alive
    await session.close()
    assert_all_gone([pid])


async def test_non_json_lines_on_stdout_are_skipped(start: Start) -> None:
    session = await start('print("Some warning printed as plain text", flush=True); ' + ANSWER)
    assert [type(e) for e in await turn(session)] == [Init, Text, Result]


# ---------------------------------------------------------------------------------------
# Permission prompts and hooks (the CLI asks through control requests)

ASK = """\
init()
out({"type": "control_request", "request_id": "ask-1", "request": {"subtype": "can_use_tool", "tool_name": "Write",
     "input": {"file_path": "a.txt"}, "tool_use_id": "toolu_7",
     "permission_suggestions": [{"type": "setMode", "destination": "session", "mode": "acceptEdits"}]}})
answer = json.loads(sys.stdin.readline())
record("answer", answer)
result(json.dumps(answer["response"]["response"]))
"""


async def test_a_permission_prompt_reaches_the_handler_and_its_answer_the_cli(start: Start) -> None:
    session = await start(ASK)
    allowing = Handler(Permission(allow=True))
    allowed = json.loads(next(e for e in await turn(session, handler=allowing) if isinstance(e, Result)).text)
    assert allowing.asked == [
        (
            "permission",
            (
                "Write",
                {"file_path": "a.txt"},
                [{"type": "setMode", "destination": "session", "mode": "acceptEdits"}],
                "toolu_7",
            ),
        )
    ]
    assert allowed == {"behavior": "allow", "updatedInput": {"file_path": "a.txt"}}

    denying = Handler(Permission(allow=False, message="Not in this folder."))
    denied = json.loads(next(e for e in await turn(session, handler=denying) if isinstance(e, Result)).text)
    assert denied == {"behavior": "deny", "message": "Not in this folder."}


async def test_a_hook_before_a_file_tool_may_refuse_it(start: Start) -> None:
    # The SDK registers the hooks in its initialize request; the CLI calls them by their ids.
    session = await start("""\
        [pre] = [m for m in SEEN if m["type"] == "control_request"][0]["request"]["hooks"]["PreToolUse"]
        out({"type": "control_request", "request_id": "hook-1", "request": {"subtype": "hook_callback",
             "callback_id": pre["hookCallbackIds"][0], "tool_use_id": "toolu_8",
             "input": {"hook_event_name": "PreToolUse", "tool_name": "Edit", "tool_input": {"file_path": "b.txt"}}}})
        answer = json.loads(sys.stdin.readline())
        result(json.dumps(answer["response"]["response"]))
    """)
    handler = Handler(refuse="Another task is editing b.txt.")
    events = await turn(session, handler=handler)
    assert handler.asked == [("before", ("Edit", {"file_path": "b.txt"}, "toolu_8"))]
    output = json.loads(next(e for e in events if isinstance(e, Result)).text)
    assert output["hookSpecificOutput"] == {
        "hookEventName": "PreToolUse",
        "permissionDecision": "deny",
        "permissionDecisionReason": "Another task is editing b.txt.",
    }


async def test_a_message_of_a_shape_the_sdk_does_not_know_is_kept_and_the_turn_goes_on(start: Start) -> None:
    session = await start('init(); out({"type": "assistant", "message": {"content": "not a list"}}); ' + ANSWER)
    events = await turn(session)
    assert Unknown(type="assistant", data={"type": "assistant", "message": {"content": "not a list"}}) in events
    assert isinstance(events[-1], Result) and session.alive


async def test_a_cli_in_a_folder_with_an_equals_sign_in_its_name_runs(start: Start, tmp_path: Path) -> None:
    # The environment is cleaned by env(1), which would read such a path as a variable to set.
    folder = tmp_path / "a=b"
    folder.mkdir()
    session = await start(name="a=b/claude")
    assert Text(text="hi hello") in await turn(session)
