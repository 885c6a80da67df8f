"""The CLI driver (drivers/claude) against fake `claude` programs written into tmp_path.

The fakes let every fault be produced on purpose: huge lines, junk, crashes, stalls, children
that outlive their parent. The real CLI is exercised in test_stub_api.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from drivers import claude
from drivers.claude import (
    CliNotFound,
    Exit,
    Garbage,
    Init,
    Notice,
    Oversized,
    Result,
    Text,
    TextDelta,
    ToolResult,
    ToolUse,
    TurnSpec,
    Unknown,
    WorkdirMissing,
    process,
)
from tests.processes import assert_all_gone, running

SID = "0b6f4b52-3c1e-4d7a-9f51-2a1d6c8e9b30"
INIT_LINE = json.dumps({"type": "system", "subtype": "init", "session_id": SID, "cwd": "/w", "model": "m"})


# ---------------------------------------------------------------------------------------
# Helpers


def python_fake(tmp_path: Path, body: str, name: str = "claude") -> str:
    path = tmp_path / name
    path.write_text(f"#!{sys.executable}\n" + textwrap.dedent(body))
    path.chmod(0o755)
    return str(path)


def bash_fake(tmp_path: Path, body: str, name: str = "claude") -> str:
    path = tmp_path / name
    path.write_text("#!/bin/bash\n" + textwrap.dedent(body))
    path.chmod(0o755)
    return str(path)


def feed_fake(tmp_path: Path, data: bytes) -> str:
    """A fake whose stdout is exactly ``data``."""
    (tmp_path / "feed").write_bytes(data)
    return bash_fake(tmp_path, f'cat "{tmp_path / "feed"}"\n')


async def collect(spec: TurnSpec, **kwargs: Any) -> list[claude.Event]:
    async with asyncio.timeout(15):
        return [event async for event in claude.run_turn(spec, **kwargs)]


# TurnSpec.env is the whole environment of the process: fakes need a PATH.
BASE_ENV = {"PATH": os.environ["PATH"]}


def spec_for(program: str, tmp_path: Path, prompt: str = "hi", env: dict[str, str] | None = None, **kwargs: Any) -> TurnSpec:
    return TurnSpec(argv=[program], prompt=prompt, cwd=str(tmp_path), env={**BASE_ENV, **(env or {})}, **kwargs)


def read_pid(path: Path) -> int:
    return int(path.read_text().strip())


@pytest.fixture(autouse=True)
def _no_strays(tmp_path: Path) -> Iterator[None]:
    # If the driver regresses, the sleeps the fakes start must not stay behind on a shared machine.
    yield
    for name in ("grandchild", "escaped"):
        with contextlib.suppress(OSError, ValueError):
            pid = read_pid(tmp_path / name)
            if running(pid):
                os.kill(pid, signal.SIGKILL)


# A fake that stalls: it starts a child in its group and one that escapes the group with setsid
# (as the real CLI does for its Bash tool), prints init and sleeps; optionally it ignores SIGTERM.
STALL = """\
{trap}
sleep 1000 &
echo $! > "$FAKE_DIR/grandchild"
setsid bash -c 'echo $$ > "$FAKE_DIR/escaped.tmp"; mv "$FAKE_DIR/escaped.tmp" "$FAKE_DIR/escaped"; exec sleep 1000' &
while [ ! -s "$FAKE_DIR/escaped" ]; do sleep 0.01; done
echo '{init}'
sleep 1000
"""


def stall_fake(tmp_path: Path, *, ignore_term: bool = False) -> str:
    trap = "trap '' TERM" if ignore_term else ""
    return bash_fake(tmp_path, STALL.format(trap=trap, init=INIT_LINE))


class Spawned:
    """An on_spawn callback that remembers the pid (which is also the process group id)."""

    def __init__(self) -> None:
        self.pids: list[int] = []

    def __call__(self, pid: int) -> None:
        self.pids.append(pid)

    @property
    def pid(self) -> int:
        assert len(self.pids) == 1, self.pids
        return self.pids[0]


def stall_processes(tmp_path: Path, spawned: Spawned) -> list[int]:
    return [spawned.pid, read_pid(tmp_path / "grandchild"), read_pid(tmp_path / "escaped")]


# ---------------------------------------------------------------------------------------
# argv


def test_first_turn_creates_the_session_with_stream_json_output() -> None:
    argv = claude.build_argv("/opt/claude", session_id=SID, resume=False)
    assert argv[0] == "/opt/claude"
    assert "--print" in argv
    at = argv.index("--output-format")
    assert argv[at + 1] == "stream-json"
    assert "--verbose" in argv  # stream-json with --print is refused without it
    assert f"--session-id={SID}" in argv
    assert not any(arg.startswith("--resume") for arg in argv)


def test_later_turns_resume_the_session() -> None:
    argv = claude.build_argv("claude", session_id=SID, resume=True)
    assert f"--resume={SID}" in argv
    assert not any(arg.startswith("--session-id") for arg in argv)


@pytest.mark.parametrize("bad", [
    "",
    "not-a-uuid",
    "--dangerously-skip-permissions",
    SID + "\n",
    "\n" + SID,
    SID + " --dangerously-skip-permissions",
    SID.replace("-", ""),
    SID[:-1] + "g",
])
def test_a_session_id_that_is_not_a_uuid_is_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        claude.build_argv("claude", session_id=bad, resume=False)
    with pytest.raises(ValueError):
        claude.build_argv("claude", session_id=bad, resume=True)
    with pytest.raises(ValueError):
        claude.transcript_path("/cfg", "/work", bad)


def test_uppercase_uuid_is_accepted() -> None:
    assert f"--resume={SID.upper()}" in claude.build_argv("claude", session_id=SID.upper(), resume=True)


def test_permission_flags() -> None:
    plain = claude.build_argv("claude", session_id=SID, resume=False)
    assert not any("permission" in arg for arg in plain)

    mode = claude.build_argv("claude", session_id=SID, resume=False, permission_mode="acceptEdits")
    assert "--permission-mode=acceptEdits" in mode
    assert "--dangerously-skip-permissions" not in mode

    skip = claude.build_argv("claude", session_id=SID, resume=False, skip_permissions=True, permission_mode="acceptEdits")
    assert "--dangerously-skip-permissions" in skip
    # Skipping permissions is a mode of its own: a second mode flag would contradict it.
    assert not any(arg.startswith("--permission-mode") for arg in skip)


def test_allowed_tools_and_inline_settings_are_single_arguments() -> None:
    settings = json.dumps({"hooks": {"PreToolUse": [{"matcher": "Write|Edit", "hooks": [
        {"type": "command", "command": "/bin/hook --flag value"}]}]}})
    argv = claude.build_argv("claude", session_id=SID, resume=False, allowed_tools=["Read", "Bash(git log:*)"],
                          settings_json=settings)
    assert "--allowedTools=Read,Bash(git log:*)" in argv
    assert f"--settings={settings}" in argv
    assert not any(arg.startswith("--allowedTools") or arg.startswith("--settings")
                   for arg in claude.build_argv("claude", session_id=SID, resume=False))


def test_partial_messages_are_asked_for_unless_turned_off() -> None:
    assert "--include-partial-messages" in claude.build_argv("claude", session_id=SID, resume=False)
    assert "--include-partial-messages" not in claude.build_argv("claude", session_id=SID, resume=False,
                                                              partial_messages=False)


async def test_the_message_goes_to_stdin_never_to_argv(tmp_path: Path) -> None:
    fake = python_fake(tmp_path, """\
        import json, os, sys
        print(json.dumps({"type": "echo", "stdin": sys.stdin.buffer.read().decode(), "argv": sys.argv[1:],
                          "cwd": os.getcwd(), "env": os.environ.get("FAKE_SETTING"), "path": os.environ.get("PATH"),
                          "secret": os.environ.get("SERVER_SECRET")}))
    """)
    prompt = "--dangerously-skip-permissions\nhello 'world' $(touch pwned) ünïcode 🎉\n\nlast line"
    argv = claude.build_argv(fake, session_id=SID, resume=False, permission_mode="acceptEdits")
    os.environ["SERVER_SECRET"] = "s3cret"
    try:
        events = await collect(TurnSpec(argv=argv, prompt=prompt, cwd=str(tmp_path), env={**BASE_ENV, "FAKE_SETTING": "on"}))
    finally:
        del os.environ["SERVER_SECRET"]

    echo = events[0]
    assert isinstance(echo, Unknown) and echo.type == "echo"
    assert echo.data["stdin"] == prompt
    assert echo.data["argv"] == argv[1:]
    assert not any("hello" in arg or "pwned" in arg for arg in echo.data["argv"])
    assert echo.data["cwd"] == str(tmp_path)
    # TurnSpec.env is the CLI's whole environment: nothing of the server's (its secrets) is added.
    assert echo.data["env"] == "on"
    assert echo.data["path"] == os.environ["PATH"]
    assert echo.data["secret"] is None
    assert not (tmp_path / "pwned").exists()
    assert events[-1] == Exit(returncode=0, stderr="")


# ---------------------------------------------------------------------------------------
# Parsing single lines


def test_parse_init_text_tool_use_and_result_events() -> None:
    assert claude.parse_line(INIT_LINE) == [Init(session_id=SID, cwd="/w", model="m")]

    assistant = {"type": "assistant", "message": {"role": "assistant", "content": [
        {"type": "text", "text": "Let me write it."},
        {"type": "tool_use", "id": "toolu_1", "name": "Write", "input": {"file_path": "/w/a.txt", "content": "x"}},
    ]}}
    assert claude.parse_line(json.dumps(assistant).encode()) == [
        Text(text="Let me write it."),
        ToolUse(id="toolu_1", name="Write", input={"file_path": "/w/a.txt", "content": "x"}),
    ]

    tool_result = {"type": "user", "message": {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_1", "is_error": True,
         "content": [{"type": "text", "text": "line 1"}, {"type": "image", "source": {}}, {"type": "text", "text": "line 2"}]},
        {"type": "tool_result", "tool_use_id": "toolu_2", "content": "plain string"},
    ]}}
    assert claude.parse_line(json.dumps(tool_result)) == [
        ToolResult(tool_use_id="toolu_1", content="line 1\n[image]\nline 2", is_error=True),
        ToolResult(tool_use_id="toolu_2", content="plain string", is_error=False),
    ]

    result = {"type": "result", "subtype": "success", "is_error": False, "result": "All done.", "session_id": SID,
              "duration_ms": 719, "total_cost_usd": 0.0992,
              "usage": {"input_tokens": 3, "cache_creation_input_tokens": 100, "cache_read_input_tokens": 24000,
                        "output_tokens": 25}}
    assert claude.parse_line(json.dumps(result)) == [Result(
        is_error=False, subtype="success", text="All done.", session_id=SID, duration_ms=719, total_cost_usd=0.0992,
        input_tokens=24103, output_tokens=25)]

    failed = {"type": "result", "subtype": "error_during_execution", "is_error": True, "errors": ["boom", "bang"]}
    [parsed] = claude.parse_line(json.dumps(failed))
    assert isinstance(parsed, Result) and parsed.is_error and parsed.errors == ("boom", "bang")


def test_the_users_own_message_echoed_back_is_not_assistant_text() -> None:
    echoed = {"type": "user", "message": {"role": "user", "content": "my own words"}}
    assert claude.parse_line(json.dumps(echoed)) == []
    said = {"type": "assistant", "message": {"content": "a whole answer as a string"}}
    assert claude.parse_line(json.dumps(said)) == [Text(text="a whole answer as a string")]


def test_partial_message_stream_events() -> None:
    delta = {"type": "stream_event", "event": {"type": "content_block_delta", "index": 0,
                                               "delta": {"type": "text_delta", "text": "Hel"}}}
    assert claude.parse_line(json.dumps(delta)) == [TextDelta(text="Hel")]
    json_delta = {"type": "stream_event", "event": {"type": "content_block_delta", "index": 0,
                                                    "delta": {"type": "input_json_delta", "partial_json": "{\""}}}
    assert claude.parse_line(json.dumps(json_delta)) == []
    assert claude.parse_line(json.dumps({"type": "stream_event", "event": {"type": "message_stop"}})) == []


def test_system_events_other_than_init_are_notices() -> None:
    denied = {"type": "system", "subtype": "permission_denied", "tool_name": "Write", "message": "not granted"}
    assert claude.parse_line(json.dumps(denied)) == [Notice(subtype="permission_denied", data=denied)]


@pytest.mark.parametrize("line", ["", "   ", "\n", b"\r\n", b""])
def test_blank_lines_give_nothing(line: str | bytes) -> None:
    assert claude.parse_line(line) == []


@pytest.mark.parametrize("line", ["Not logged in · Please run /login", "{not json", "[1, 2]", '"a string"', "42",
                                  "null", b"\xff\xfe binary"])
def test_lines_that_are_not_json_objects_are_garbage(line: str | bytes) -> None:
    [event] = claude.parse_line(line)
    assert isinstance(event, Garbage)


def test_garbage_keeps_a_bounded_copy_of_the_line() -> None:
    [event] = claude.parse_line("x" * 100_000)
    assert isinstance(event, Garbage) and 0 < len(event.line) <= 2000


@pytest.mark.parametrize("obj", [
    {"type": "rate_limit_event", "info": {}},
    {"type": "something_new"},
    {"no_type": True},
])
def test_unknown_event_types_are_kept_as_unknown(obj: dict[str, Any]) -> None:
    assert claude.parse_line(json.dumps(obj)) == [Unknown(type=str(obj.get("type")), data=obj)]


@pytest.mark.parametrize("obj", [
    {"type": "assistant", "message": "not an object"},
    {"type": "assistant", "message": {"content": 42}},
    {"type": "assistant", "message": {"content": [None, 3, "text", {"type": "tool_use", "input": "not a dict"}]}},
    {"type": "user", "message": None},
    {"type": "user", "message": {"content": [{"type": "tool_result", "content": {"odd": 1}}]}},
    {"type": "stream_event", "event": "oops"},
    {"type": "stream_event", "event": {"type": "content_block_delta", "delta": ["list"]}},
    {"type": "result", "usage": "none", "total_cost_usd": "n/a", "duration_ms": "soon", "errors": "just one"},
    {"type": "result", "usage": {"input_tokens": "many", "output_tokens": 1e400}},
    {"type": "system"},
])
def test_events_of_an_unexpected_shape_never_raise(obj: dict[str, Any]) -> None:
    events = claude.parse_line(json.dumps(obj))
    assert isinstance(events, list)


def test_a_result_with_odd_figures_reads_them_as_zero() -> None:
    [result] = claude.parse_line(json.dumps({"type": "result", "usage": "none", "total_cost_usd": "n/a",
                                          "duration_ms": "soon", "errors": "just one"}))
    assert isinstance(result, Result)
    assert (result.total_cost_usd, result.duration_ms, result.input_tokens) == (0.0, 0, 0)
    assert result.errors == ("just one",)


# ---------------------------------------------------------------------------------------
# The stream of a whole turn


async def test_a_stream_with_junk_unknowns_and_blank_lines(tmp_path: Path) -> None:
    lines = [
        INIT_LINE,
        "",
        "   ",
        "Some warning the CLI printed as plain text",
        json.dumps({"type": "rate_limit_event", "rate_limit_info": {"status": "allowed"}}),
        json.dumps({"type": "assistant", "message": {"content": [{"type": "text", "text": "Hi!"}]}}),
        json.dumps({"type": "result", "subtype": "success", "is_error": False, "result": "Hi!", "session_id": SID}),
    ]
    # CRLF line ends and a last line without a newline are read like any other line.
    data = ("\r\n".join(lines[:3]) + "\r\n" + "\n".join(lines[3:])).encode()
    events = await collect(spec_for(feed_fake(tmp_path, data), tmp_path))
    assert [type(e) for e in events] == [Init, Garbage, Unknown, Text, Result, Exit]
    assert events[1] == Garbage(line="Some warning the CLI printed as plain text")
    assert isinstance(events[2], Unknown) and events[2].type == "rate_limit_event"
    assert events[-1] == Exit(returncode=0, stderr="")


async def test_a_line_of_several_megabytes_comes_through_intact(tmp_path: Path) -> None:
    fake = python_fake(tmp_path, """\
        import json, sys
        big = "".join(chr(0x61 + i % 26) for i in range(26)) * 200_000 + "é🎉 end"
        sys.stdout.write(json.dumps({"type": "user", "message": {"content": [
            {"type": "tool_result", "tool_use_id": "toolu_big", "content": big}]}}) + "\\n")
        sys.stdout.write(json.dumps({"type": "result", "result": "ok"}) + "\\n")
    """)
    expected = "abcdefghijklmnopqrstuvwxyz" * 200_000 + "é🎉 end"
    events = await collect(spec_for(fake, tmp_path))
    assert [type(e) for e in events] == [ToolResult, Result, Exit]
    big = events[0]
    assert isinstance(big, ToolResult) and big.tool_use_id == "toolu_big"
    assert len(big.content) == len(expected) and big.content == expected
    assert events[-1] == Exit(returncode=0, stderr="")


async def test_lines_that_arrive_in_pieces_are_joined_even_inside_a_character(tmp_path: Path) -> None:
    line = json.dumps({"type": "assistant", "message": {"content": [{"type": "text", "text": "héllo 🎉 wörld"}]}},
                      ensure_ascii=False).encode() + b"\n"
    cut = line.index("🎉".encode()) + 2  # in the middle of the emoji's four bytes
    fake = python_fake(tmp_path, f"""\
        import sys, time
        line = {line!r}
        for piece in (line[:10], line[10:{cut}], line[{cut}:-1], line[-1:] + line[:5], line[5:]):
            sys.stdout.buffer.write(piece)
            sys.stdout.buffer.flush()
            time.sleep(0.05)
    """)
    events = await collect(spec_for(fake, tmp_path))
    assert events[:2] == [Text(text="héllo 🎉 wörld")] * 2
    assert isinstance(events[2], Exit)


def text_line_of(size: int) -> bytes:
    """An assistant text event that is exactly ``size`` bytes long."""
    empty = json.dumps({"type": "assistant", "message": {"content": [{"type": "text", "text": ""}]}}).encode()
    return empty.replace(b'"text": ""', b'"text": "' + b"y" * (size - len(empty)) + b'"')


async def test_a_line_over_the_limit_is_reported_as_oversized_and_the_next_lines_still_parse(tmp_path: Path) -> None:
    limit = 1000
    at_limit = text_line_of(limit)
    assert len(at_limit) == limit
    data = b"\n".join([
        INIT_LINE.encode(),
        b"z" * 5000,
        json.dumps({"type": "assistant", "message": {"content": [{"type": "text", "text": "after"}]}}).encode(),
        at_limit,
        text_line_of(limit + 1),
        b'{"type": "result", "result": "' + b"q" * 3000,  # the last line, with no newline after it
    ])
    events = await collect(spec_for(feed_fake(tmp_path, data), tmp_path, max_line_bytes=limit))
    assert events[0] == Init(session_id=SID, cwd="/w", model="m")
    assert events[1] == Oversized(size=5000)
    assert events[2] == Text(text="after")
    assert events[3] == Text(text="y" * (limit - len(text_line_of(0))))
    assert events[4] == Oversized(size=limit + 1)
    assert events[5] == Oversized(size=len(b'{"type": "result", "result": "') + 3000)
    assert events[6] == Exit(returncode=0, stderr="")
    assert len(events) == 7


async def test_an_oversized_line_spanning_many_reads_is_skipped_without_losing_its_neighbours(tmp_path: Path) -> None:
    fake = python_fake(tmp_path, f"""\
        import sys
        out = sys.stdout.buffer
        out.write(b'{INIT_LINE}' + b"\\n" + b"w" * 3_000_000 + b"\\n" + b'{{"type": "result", "result": "kept"}}\\n')
    """)
    events = await collect(spec_for(fake, tmp_path, max_line_bytes=100_000))
    assert [type(e) for e in events] == [Init, Oversized, Result, Exit]
    assert events[1] == Oversized(size=3_000_000)
    assert isinstance(events[2], Result) and events[2].text == "kept"


# ---------------------------------------------------------------------------------------
# How the process ends


async def test_a_crash_ends_with_exit_holding_the_code_and_stderr(tmp_path: Path) -> None:
    fake = bash_fake(tmp_path, f"""\
        echo '{INIT_LINE}'
        echo "Error: Session ID {SID} is already in use." >&2
        exit 3
    """)
    events = await collect(spec_for(fake, tmp_path))
    assert [type(e) for e in events] == [Init, Exit]
    assert events[-1] == Exit(returncode=3, stderr=f"Error: Session ID {SID} is already in use.\n")


async def test_death_by_a_signal_gives_a_negative_returncode(tmp_path: Path) -> None:
    events = await collect(spec_for(bash_fake(tmp_path, "kill -KILL $$\n"), tmp_path))
    assert events == [Exit(returncode=-9, stderr="")]


async def test_plenty_of_stderr_neither_blocks_the_process_nor_is_kept_whole(tmp_path: Path) -> None:
    # 1 MB of stderr before any stdout: the fake would block for ever if stderr were not read alongside.
    fake = python_fake(tmp_path, f"""\
        import sys
        sys.stderr.write("noise " * 200_000 + "TAIL")
        sys.stderr.flush()
        print('{INIT_LINE}')
        sys.exit(1)
    """)
    events = await collect(spec_for(fake, tmp_path))
    assert [type(e) for e in events] == [Init, Exit]
    end = events[-1]
    assert isinstance(end, Exit) and end.returncode == 1
    assert end.stderr.endswith("noise TAIL")
    assert len(end.stderr) <= process.STDERR_KEEP_BYTES


async def test_a_program_that_never_reads_its_stdin_is_no_error(tmp_path: Path) -> None:
    fake = bash_fake(tmp_path, f"echo '{INIT_LINE}'\n")
    events = await collect(spec_for(fake, tmp_path, prompt="x" * 2_000_000))
    assert [type(e) for e in events] == [Init, Exit]
    assert events[-1] == Exit(returncode=0, stderr="")


async def test_on_spawn_gets_the_pid_which_leads_a_group_and_session_of_its_own(tmp_path: Path) -> None:
    seen: dict[str, int] = {}

    async def on_spawn(pid: int) -> None:
        seen.update(pid=pid, pgid=os.getpgid(pid), sid=os.getsid(pid))
        seen["live"] = pid in claude.live_groups()

    fake = bash_fake(tmp_path, "read -r line\necho '{\"type\": \"done\"}'\n")
    events = await collect(spec_for(fake, tmp_path), on_spawn=on_spawn)
    assert [type(e) for e in events] == [Unknown, Exit]
    assert seen["pid"] == seen["pgid"] == seen["sid"]
    assert os.getpgid(0) != seen["pid"]
    assert seen["live"]
    assert seen["pid"] not in claude.live_groups()


async def test_an_on_spawn_that_fails_still_ends_the_process(tmp_path: Path) -> None:
    spawned = Spawned()

    def on_spawn(pid: int) -> None:
        spawned(pid)
        raise RuntimeError("database is gone")

    with pytest.raises(RuntimeError, match="database is gone"):
        await collect(spec_for(bash_fake(tmp_path, "sleep 1000\n"), tmp_path), on_spawn=on_spawn)
    assert_all_gone([spawned.pid], spawned.pid)
    assert spawned.pid not in claude.live_groups()


async def test_a_timeout_kills_the_cli_and_everything_it_started(tmp_path: Path) -> None:
    spawned = Spawned()
    events: list[claude.Event] = []
    spec = spec_for(stall_fake(tmp_path), tmp_path, env={"FAKE_DIR": str(tmp_path)}, kill_grace=1.0)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(10) as deadline:
            async for event in claude.run_turn(spec, on_spawn=spawned):
                events.append(event)
                # The stall starts now: give it a short deadline (startup may be slow on a busy machine).
                deadline.reschedule(asyncio.get_running_loop().time() + 0.3)
                started = time.monotonic()
    assert time.monotonic() - started < 2.5
    assert events == [Init(session_id=SID, cwd="/w", model="m")]
    assert_all_gone(stall_processes(tmp_path, spawned), spawned.pid)
    assert spawned.pid not in claude.live_groups()


async def test_cancelling_the_consuming_task_kills_the_group(tmp_path: Path) -> None:
    spawned = Spawned()
    first = asyncio.Event()
    spec = spec_for(stall_fake(tmp_path), tmp_path, env={"FAKE_DIR": str(tmp_path)}, kill_grace=1.0)

    async def consume() -> None:
        async for _event in claude.run_turn(spec, on_spawn=spawned):
            first.set()

    task = asyncio.create_task(consume())
    async with asyncio.timeout(10):
        await first.wait()
    processes = stall_processes(tmp_path, spawned)
    assert all(running(pid) for pid in processes)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert_all_gone(processes, spawned.pid)


async def test_breaking_out_early_with_aclosing_kills_the_group(tmp_path: Path) -> None:
    spawned = Spawned()
    spec = spec_for(stall_fake(tmp_path), tmp_path, env={"FAKE_DIR": str(tmp_path)}, kill_grace=1.0)
    async with asyncio.timeout(10):
        async with contextlib.aclosing(claude.run_turn(spec, on_spawn=spawned)) as events:
            async for event in events:
                assert isinstance(event, Init)
                break
    assert_all_gone(stall_processes(tmp_path, spawned), spawned.pid)


async def test_a_cli_that_ignores_sigterm_is_killed_after_the_grace(tmp_path: Path) -> None:
    spawned = Spawned()
    spec = spec_for(stall_fake(tmp_path, ignore_term=True), tmp_path, env={"FAKE_DIR": str(tmp_path)},
                    kill_grace=0.3)
    async with asyncio.timeout(10):
        async with contextlib.aclosing(claude.run_turn(spec, on_spawn=spawned)) as events:
            async for _event in events:
                processes = stall_processes(tmp_path, spawned)
                started = time.monotonic()
                break
    assert time.monotonic() - started < 2.5
    assert_all_gone(processes, spawned.pid)


async def test_when_the_cli_exits_the_turn_ends_even_if_a_child_holds_its_stdout(tmp_path: Path) -> None:
    spawned = Spawned()
    fake = bash_fake(tmp_path, f"""\
        sleep 1000 &
        echo $! > "{tmp_path / "grandchild"}"
        echo '{INIT_LINE}'
        echo "bye" >&2
        exit 0
    """)
    started = time.monotonic()
    events = await collect(spec_for(fake, tmp_path), on_spawn=spawned)
    assert time.monotonic() - started < 3
    assert events == [Init(session_id=SID, cwd="/w", model="m"), Exit(returncode=0, stderr="bye\n")]
    assert_all_gone([read_pid(tmp_path / "grandchild")], spawned.pid)


async def test_exit_is_the_last_event_and_the_group_is_gone_after_a_normal_turn(tmp_path: Path) -> None:
    spawned = Spawned()
    fake = bash_fake(tmp_path, f"echo '{INIT_LINE}'\n")
    events = await collect(spec_for(fake, tmp_path), on_spawn=spawned)
    assert [type(e) for e in events] == [Init, Exit]
    assert_all_gone([spawned.pid], spawned.pid)
    assert spawned.pid not in claude.live_groups()


async def test_when_the_server_exits_without_closing_a_turn_its_processes_die_too(tmp_path: Path) -> None:
    # The CLI runs in a session of its own, so it would not die with the server by itself.
    fake = stall_fake(tmp_path)
    script = tmp_path / "server.py"
    script.write_text(textwrap.dedent(f"""\
        import asyncio, sys
        sys.path.insert(0, {str(Path(claude.__file__).parents[2])!r})
        from drivers import claude
        spec = claude.TurnSpec(argv=[{fake!r}], prompt="hi", cwd={str(tmp_path)!r}, env={{"FAKE_DIR": {str(tmp_path)!r}, "PATH": {os.environ["PATH"]!r}}})
        events = claude.run_turn(spec, on_spawn=lambda pid: print(pid, flush=True))
        loop = asyncio.new_event_loop()
        loop.run_until_complete(events.__anext__())
        sys.exit(0)  # the turn is left open: only the exit handler can end it
    """))
    server = await asyncio.create_subprocess_exec(sys.executable, str(script), stdout=asyncio.subprocess.PIPE)
    async with asyncio.timeout(10):
        out, _ = await server.communicate()
    pgid = int(out.split()[0])
    assert_all_gone([pgid, read_pid(tmp_path / "grandchild"), read_pid(tmp_path / "escaped")], pgid)


# ---------------------------------------------------------------------------------------
# Missing program or folder


async def test_a_missing_executable_is_cli_not_found(tmp_path: Path) -> None:
    with pytest.raises(CliNotFound, match="nope"):
        await collect(spec_for(str(tmp_path / "nope"), tmp_path))


@pytest.mark.parametrize("make", [
    lambda p: p.write_text("#!/bin/sh\necho hi\n"),  # not executable
    lambda p: p.mkdir(),  # a folder
], ids=["not-executable", "a-folder"])
async def test_a_program_that_cannot_run_is_cli_not_found(tmp_path: Path, make: Callable[[Path], object]) -> None:
    program = tmp_path / "claude"
    make(program)
    with pytest.raises(CliNotFound, match="claude"):
        await collect(spec_for(str(program), tmp_path))


async def test_a_missing_working_directory_is_workdir_missing(tmp_path: Path) -> None:
    fake = bash_fake(tmp_path, "echo hi\n")
    with pytest.raises(WorkdirMissing, match="gone"):
        await collect(TurnSpec(argv=[fake], prompt="hi", cwd=str(tmp_path / "gone"), env=BASE_ENV))


async def test_a_working_directory_that_is_a_file_is_workdir_missing(tmp_path: Path) -> None:
    fake = bash_fake(tmp_path, "echo hi\n")
    (tmp_path / "file").write_text("")
    with pytest.raises(WorkdirMissing):
        await collect(TurnSpec(argv=[fake], prompt="hi", cwd=str(tmp_path / "file"), env=BASE_ENV))


# ---------------------------------------------------------------------------------------
# Transcript paths


@pytest.mark.parametrize(("cwd", "folder"), [
    ("/srv/My_Proj.v2/sub dir", "-srv-My-Proj-v2-sub-dir"),
    ("/home/ada/work", "-home-ada-work"),
    ("/tmp/a-b~c+d@e", "-tmp-a-b-c-d-e"),
    ("/data/ünï", "-data--n-"),
    # The CLI counts JavaScript string units: a character beyond U+FFFF is two of them.
    ("/w/emoji 🎉 dir", "-w-emoji----dir"),
])
def test_project_folder_encoding_replaces_every_non_alphanumeric(cwd: str, folder: str) -> None:
    assert claude.encode_project_dir(cwd) == folder
    assert claude.encode_project_dir(Path(cwd)) == folder


def test_a_long_project_folder_is_cut_at_200_and_gets_the_clis_hash() -> None:
    # Name and hash as the real CLI made them for this path (see test_stub_api for the live check).
    cwd = "/tmp/tmp9gum2ri6/" + "x" * 250
    assert claude.encode_project_dir(cwd) == "-tmp-tmp9gum2ri6-" + "x" * 183 + "-bh2w8c"
    exactly = "/" + "a" * 199
    assert claude.encode_project_dir(exactly) == "-" + "a" * 199
    longer = claude.encode_project_dir(exactly + "b")
    assert longer.startswith("-" + "a" * 199 + "-") and len(longer) > 201


def test_transcript_path() -> None:
    sid = str(uuid.uuid4())
    assert claude.transcript_path("/cfg", "/srv/My_Proj.v2/sub dir", sid) == Path(
        f"/cfg/projects/-srv-My-Proj-v2-sub-dir/{sid}.jsonl")
    assert claude.transcript_path(Path("/cfg"), Path("/w"), sid.upper()).name == f"{sid}.jsonl"


def test_transcript_path_follows_symlinks_like_the_cli_does(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    assert claude.transcript_path("/cfg", tmp_path / "link", SID) == claude.transcript_path("/cfg", real, SID)
    assert claude.transcript_path("/cfg", tmp_path / "link", SID).parent.name.endswith("-real")
