"""How a LiveSession (drivers/claude/live.py) ends, against fake ``claude`` programs: crashes,
stalls, children that outlive their turn, a CLI that ignores SIGTERM, interrupts, a server that
exits, a program or folder that is missing. Nothing may hang, and nothing may stay behind.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from drivers import claude
from drivers.claude import (
    CliNotFound,
    Exit,
    Init,
    LiveSession,
    LiveSpec,
    Result,
    SessionFailed,
    Text,
    WorkdirMissing,
    proctree,
)
from tests.drivers.claude.fakes import (
    ANSWER,
    BASE_ENV,
    IGNORE_TERM,
    SID,
    STALL,
    Handler,
    Start,
    child_pids,
    fake_cli,
    records,
    turn,
)
from tests.processes import assert_all_gone, running

# ---------------------------------------------------------------------------------------
# How a process ends


async def test_a_crash_mid_turn_ends_the_turn_with_the_exit_code_and_stderr(start: Start) -> None:
    session = await start("""\
        init(); say("Working on it")
        sys.stderr.write("noise\\n" * 100 + "fatal: the model went away\\n"); sys.stderr.flush()
        os._exit(3)
    """)
    pid = session.pid
    events = await turn(session)
    assert events[:2] == [Init(session_id=SID, cwd=session.spec.cwd, model="fake"), Text(text="Working on it")]
    end = events[-1]
    assert isinstance(end, Exit) and end.returncode == 3
    assert end.stderr.endswith("fatal: the model went away")
    assert len(events) == 3
    assert not session.alive
    assert_all_gone([pid])
    with pytest.raises(SessionFailed):
        await turn(session)


async def test_a_crash_ends_the_turn_even_if_what_the_cli_started_holds_its_stdout(
    start: Start, tmp_path: Path
) -> None:
    # The child inherited the CLI's stdout: the stream would not end while it lives.
    session = await start('spawn("child-a"); init(); say("bye"); os._exit(3)')
    pid = session.pid
    events = await turn(session)
    assert events[-2:] == [Text(text="bye"), Exit(returncode=3, stderr=events[-1].stderr)]
    assert_all_gone([pid, *child_pids(tmp_path)])


async def test_death_by_a_signal_gives_a_negative_returncode(start: Start) -> None:
    session = await start("init(); os.kill(os.getpid(), signal.SIGKILL)")
    events = await turn(session)
    assert events[-1] == Exit(returncode=-signal.SIGKILL, stderr=events[-1].stderr)
    assert not session.alive


async def test_a_cli_that_exits_without_a_result_ends_the_turn_and_the_session(start: Start) -> None:
    session = await start('init(); say("half an answer"); sys.exit(0)')
    events = await turn(session)
    assert [type(e) for e in events] == [Init, Text, Exit]
    assert isinstance(events[-1], Exit) and events[-1].returncode == 0
    assert not session.alive


async def test_the_cli_leads_a_process_group_and_session_of_its_own(start: Start) -> None:
    # So that what it leaves in its group can be ended even after it exited, and a signal to the
    # server's group (a Ctrl-C in its terminal) does not reach it.
    session = await start()
    pid = session.pid
    assert pid is not None and os.getpgid(pid) == os.getsid(pid) == pid != os.getpgid(0)
    assert pid in proctree.live_groups()
    await session.close()
    assert pid not in proctree.live_groups()


async def test_a_stall_is_ended_by_a_timeout_and_close_ends_the_whole_tree(start: Start, tmp_path: Path) -> None:
    session = await start(STALL)
    events: list[claude.Event] = []
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(15) as deadline:
            async for event in session.turn("hello", Handler()):
                if isinstance(event, claude.Sent):
                    continue  # (the message is on its way: the CLI answers next)
                events.append(event)
                # The stall starts now: give it a short deadline (startup may be slow on a busy machine).
                deadline.reschedule(asyncio.get_running_loop().time() + 0.3)
    assert events == [Init(session_id=SID, cwd=session.spec.cwd, model="fake")]
    processes = [session.pid, *child_pids(tmp_path)]
    assert len(processes) == 3 and all(running(pid) for pid in processes)
    async with asyncio.timeout(15):
        await session.close()
    assert_all_gone(processes)
    assert session.pid not in proctree.live_groups()


@pytest.mark.parametrize("at_eof", ["pass", "time.sleep(1000)"], ids=["exits-at-eof", "stays-after-eof"])
async def test_closing_ends_the_tree_also_for_a_cli_that_ignores_sigterm(
    start: Start, tmp_path: Path, at_eof: str
) -> None:
    session = await start(STALL, setup=IGNORE_TERM, at_eof=at_eof)
    async with asyncio.timeout(15):
        async for event in session.turn("hello", Handler()):
            if isinstance(event, claude.Sent):
                continue
            assert isinstance(event, Init)
            break
        processes = [session.pid, *child_pids(tmp_path)]
        await session.close()
    assert_all_gone(processes)


async def test_closing_an_idle_session_lets_the_cli_end_by_itself(start: Start, tmp_path: Path) -> None:
    # Its stdin is closed: the real CLI flushes its transcript and exits.
    session = await start(at_eof='record("eof", True); spawn("child-left")')
    await turn(session)
    pid = session.pid
    async with asyncio.timeout(15):
        await session.close()
    assert records(tmp_path, "eof") == [True]
    assert_all_gone([pid, *child_pids(tmp_path)])
    assert not session.alive
    await session.close()  # twice is harmless


async def test_an_interrupt_ends_the_turn_and_keeps_the_process(start: Start, tmp_path: Path) -> None:
    session = await start("""\
        init(); say("working")
        if msg["message"]["content"] == "long":
            request = json.loads(sys.stdin.readline())
            record("during the turn", request["request"])
            out({"type": "control_response", "response": {"subtype": "success", "request_id": request["request_id"],
                 "response": {}}})
        result("stopped" if msg["message"]["content"] == "long" else "answered")
    """)
    pid = session.pid
    seen: list[claude.Event] = []
    async with asyncio.timeout(15):
        async for event in session.turn("long", Handler()):
            seen.append(event)
            if isinstance(event, Text):
                assert await session.interrupt()
    assert isinstance(seen[-1], Result) and seen[-1].text == "stopped"
    assert records(tmp_path, "during the turn") == [{"subtype": "interrupt"}]
    assert session.alive and session.pid == pid
    after = await turn(session, "next")
    assert isinstance(after[-1], Result) and after[-1].text == "answered"


async def test_an_interrupt_the_cli_does_not_answer_gives_up_after_the_grace(start: Start) -> None:
    session = await start(STALL)
    async with asyncio.timeout(15):
        async for event in session.turn("hello", Handler()):
            if isinstance(event, claude.Sent):
                continue
            assert not await session.interrupt()
            break


async def test_when_the_server_exits_without_closing_its_processes_die_too(tmp_path: Path) -> None:
    # Not even the CLI's SIGTERM-ignoring self, nor what it started in a session of its own.
    cli = fake_cli(tmp_path, STALL, setup=IGNORE_TERM)
    script = tmp_path / "server.py"
    script.write_text(
        textwrap.dedent(f"""\
        import asyncio, sys
        sys.path.insert(0, {str(Path(claude.__file__).parents[2])!r})
        from drivers.claude import LiveSession, LiveSpec
        from tests.drivers.claude.fakes import ANSWER, BASE_ENV, IGNORE_TERM, SID, STALL, Handler, Start, child_pids, fake_cli, records, turn

        async def first_event():
            session = LiveSession(LiveSpec(cli={cli!r}, cwd={str(tmp_path)!r}, session_id={SID!r}, resume=False,
                                           env={BASE_ENV!r}))
            await session.start()
            async for event in session.turn("hello", Handler()):
                if type(event).__name__ != "Sent":
                    break
            print(session.pid, flush=True)

        asyncio.new_event_loop().run_until_complete(first_event())
        sys.exit(0)  # the session is left open: only the exit handlers can end it
    """)
    )
    server = await asyncio.create_subprocess_exec(sys.executable, str(script), stdout=asyncio.subprocess.PIPE)
    async with asyncio.timeout(15):
        out, _ = await server.communicate()
    assert_all_gone([int(out.split()[0]), *child_pids(tmp_path)])


# ---------------------------------------------------------------------------------------
# Missing program or folder, a CLI that refuses to start


async def test_a_missing_executable_is_cli_not_found(tmp_path: Path) -> None:
    session = LiveSession(
        LiveSpec(cli=str(tmp_path / "nope"), cwd=str(tmp_path), session_id=SID, resume=False, env=BASE_ENV)
    )
    with pytest.raises(CliNotFound, match="nope"):
        await session.start()


@pytest.mark.parametrize(
    "make",
    [
        lambda p: p.write_text("#!/bin/sh\necho hi\n"),  # not executable
        lambda p: p.mkdir(),  # a folder
    ],
    ids=["not-executable", "a-folder"],
)
async def test_a_program_that_cannot_run_is_cli_not_found(tmp_path: Path, make: Callable[[Path], object]) -> None:
    program = tmp_path / "claude"
    make(program)
    with pytest.raises(CliNotFound, match="claude"):
        await LiveSession(
            LiveSpec(cli=str(program), cwd=str(tmp_path), session_id=SID, resume=False, env=BASE_ENV)
        ).start()


@pytest.mark.parametrize("name", ["gone", "a-file"])
async def test_a_missing_working_directory_is_workdir_missing(tmp_path: Path, name: str) -> None:
    (tmp_path / "a-file").write_text("")
    cli = fake_cli(tmp_path, ANSWER)
    with pytest.raises(WorkdirMissing, match=name):
        await LiveSession(
            LiveSpec(cli=cli, cwd=str(tmp_path / name), session_id=SID, resume=False, env=BASE_ENV)
        ).start()


async def test_a_cli_that_refuses_to_start_fails_with_its_words(tmp_path: Path) -> None:
    cli = fake_cli(
        tmp_path,
        ANSWER,
        setup=f"""\
        sys.stderr.write("Error: Session ID {SID} is already in use.\\n"); sys.stderr.flush()
        sys.exit(1)
    """,
    )
    session = LiveSession(LiveSpec(cli=cli, cwd=str(tmp_path), session_id=SID, resume=False, env=BASE_ENV))
    with pytest.raises(SessionFailed) as failed:
        async with asyncio.timeout(15):
            await session.start()
    assert failed.value.exit.returncode == 1
    assert failed.value.exit.stderr == f"Error: Session ID {SID} is already in use."
    assert (
        claude.Outcome(returncode=1, stderr=failed.value.exit.stderr).failure().kind
        == claude.FailureKind.SESSION_IN_USE
    )
    assert not session.alive
