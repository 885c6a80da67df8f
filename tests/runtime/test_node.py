"""The node runtime (runtime/node.py) on scripted stand-in processes (tests/fake_session.py): a whole
turn, its typed outcome, the warm process it leaves, Stop against shutdown. The same with the real
CLI is in tests/chat/services/test_execution.py."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from drivers import claude
from drivers.claude import Exit, LiveSpec, Permission, Result, TextDelta
from runtime import Done, Failed, NodeRuntime, ShutDown, Stopped, TimedOut
from tests.fake_session import FakeCli

SID = "3f2c1a4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b"
TIMEOUT = 10


class Handler:
    """Answers every prompt with ``allow``; remembers what it was asked."""

    def __init__(self, allow: bool = True) -> None:
        self.allow = allow
        self.asked: list[str] = []

    async def permission(self, tool, tool_input, suggestions, tool_use_id) -> Permission:
        self.asked.append(f"permission {tool}")
        return Permission(allow=self.allow, message="" if self.allow else "No.")

    async def before_file_tool(self, tool, tool_input, tool_use_id) -> str | None:
        self.asked.append(f"before {tool}")
        return None

    async def after_file_tool(self, tool, tool_input, tool_use_id) -> None:
        self.asked.append(f"after {tool}")


@pytest.fixture
def cli() -> FakeCli:
    return FakeCli()


@pytest.fixture
async def node(cli: FakeCli):
    built = NodeRuntime(factory=cli, max_processes=2, max_warm=2, stop_grace=0.5)
    yield built
    await built.shutdown()


@pytest.fixture
def spec(tmp_path: Path) -> LiveSpec:
    work = tmp_path / "work"
    work.mkdir()
    return LiveSpec(
        cli="claude", cwd=str(work), session_id=SID, resume=False, env={"CLAUDE_CONFIG_DIR": str(tmp_path / "config")}
    )


class Turn:
    """A turn run on the node, with the events it passed on."""

    def __init__(self, node: NodeRuntime, spec: LiveSpec, prompt: str, **options) -> None:
        self.events: list[claude.Event] = []
        self.pids: list[int | None] = []
        self.task = asyncio.create_task(
            node.run_turn(
                spec=spec,
                prompt=prompt,
                handler=options.pop("handler", Handler()),
                on_event=self._seen,
                time_limit=options.pop("time_limit", 30),
                on_process=self._process,
                **options,
            )
        )

    async def _seen(self, event: claude.Event) -> None:
        self.events.append(event)

    async def _process(self, pid: int | None) -> None:
        self.pids.append(pid)

    async def outcome(self):
        async with asyncio.timeout(TIMEOUT):
            return await self.task

    async def until_text(self, text: str) -> None:
        async with asyncio.timeout(TIMEOUT):
            while text not in "".join(e.text for e in self.events if isinstance(e, TextDelta)):
                await asyncio.sleep(0.01)

    @property
    def text(self) -> str:
        return "".join(e.text for e in self.events if isinstance(e, TextDelta))


async def test_a_turn_is_done_with_its_result_and_the_process_stays_warm(node, cli, spec):
    outcome = await Turn(node, spec, "My name is Ada").outcome()
    assert isinstance(outcome, Done) and outcome.failure is None
    assert isinstance(outcome.result, Result) and outcome.result.text == "Nice to meet you, Ada."
    resumed = dataclasses.replace(spec, resume=True)
    again = await Turn(node, resumed, "What is my name?").outcome()
    assert isinstance(again, Done) and again.result.text == "Your name is Ada."
    assert len(cli.started) == 1 and cli.started[0].turns == 2 and len(node.warm) == 1


async def test_a_process_that_may_not_stay_warm_is_closed_before_the_turn_returns(node, cli, spec):
    await Turn(node, spec, "echo: once", keep_warm=False).outcome()
    assert cli.alive == [] and len(node.warm) == 0


async def test_a_warm_process_takes_another_model_or_mode_and_stays_the_same_process(node, cli, spec):
    await Turn(node, spec, "My name is Ada").outcome()
    changed = dataclasses.replace(spec, resume=True, model="claude-other", permission_mode="acceptEdits")
    outcome = await Turn(node, changed, "which model").outcome()
    assert isinstance(outcome, Done) and outcome.result.text == "This answer comes from the model claude-other."
    [process] = cli.started
    assert process.changes == [("model", "claude-other"), ("mode", "acceptEdits")]
    assert process.turns == 2
    # Skipping permissions is not a mode a process that asks may be switched to: a new one starts.
    skipping = dataclasses.replace(changed, skip_permissions=True)
    await Turn(node, skipping, "echo: all allowed").outcome()
    await node.warm.idle()
    assert len(cli.started) == 2 and cli.started[1].mode == "bypassPermissions" and not process.alive


async def test_stop_interrupts_the_turn_and_the_process_stays(node, cli, spec):
    turn = Turn(node, spec, "slow 30")
    async with node.slot(key=SID):  # as the engine's queue holds it for the turn
        await turn.until_text("word2")
        assert node.stop(SID)
        outcome = await turn.outcome()
    assert isinstance(outcome, Stopped) and outcome.streamed[1] > 0  # what streamed is counted
    assert "word2" in turn.text and cli.started[0].alive and len(node.warm) == 1
    assert not node.stop(SID)  # nothing of the session holds a slot now


async def test_a_stop_before_the_process_is_taken_starts_none(node, cli, spec):
    async with node.slot(key=SID):
        assert node.stop(SID)
        assert await Turn(node, spec, "echo: never").outcome() == Stopped()
    assert cli.started == []


async def test_the_time_limit_interrupts_the_turn(node, cli, spec):
    outcome = await Turn(node, spec, "slow 30", time_limit=0.3).outcome()
    assert outcome == TimedOut(no_connection=False) and cli.started[0].alive


async def test_a_process_deaf_to_the_interrupt_is_ended_after_the_grace(node, cli, spec):
    turn = Turn(node, spec, "stuck 30")
    async with node.slot(key=SID):
        await turn.until_text("word1")
        node.stop(SID)
        assert await turn.outcome() == Stopped()
    assert not cli.started[0].alive and len(node.warm) == 0


async def test_a_node_that_shuts_down_ends_its_turns_as_shut_down_and_starts_none(node, cli, spec, tmp_path):
    turn = Turn(node, spec, "slow 30")
    async with node.slot(key=SID):
        await turn.until_text("word1")
        node.stop_all()
        assert await turn.outcome() == ShutDown()
    assert not cli.started[0].alive
    other = dataclasses.replace(spec, session_id="a0000000-0000-4000-8000-000000000001")
    assert await Turn(node, other, "echo: too late").outcome() == ShutDown()
    assert len(cli.started) == 1


async def test_a_crash_fails_the_turn_with_its_exit_code_and_the_next_turn_starts_anew(node, cli, spec):
    outcome = await Turn(node, spec, "crash 3").outcome()
    assert isinstance(outcome, Failed) and outcome.exit.returncode == 3
    assert "fake CLI crashed" in outcome.exit.stderr and outcome.failure.returncode == 3
    assert len(node.warm) == 0
    again = await Turn(node, spec, "echo: after the crash").outcome()
    assert isinstance(again, Done) and len(cli.started) == 2


async def test_a_process_that_cannot_start_fails_the_turn_with_why(node, cli, spec):
    cli.fail_next_start = Exit(1, "No conversation found with session ID: x")
    outcome = await Turn(node, spec, "hello").outcome()
    assert isinstance(outcome, Failed) and outcome.failure.kind == claude.FailureKind.SESSION_MISSING


async def test_what_on_event_raises_ends_the_turn_and_its_process(node, cli, spec):
    async def broken(event: claude.Event) -> None:
        raise RuntimeError("the disk is full")

    with pytest.raises(RuntimeError, match="the disk is full"):
        await node.run_turn(spec=spec, prompt="hello", handler=Handler(), on_event=broken, time_limit=30)
    assert not cli.started[0].alive and len(node.warm) == 0


async def test_a_cancelled_turn_closes_its_process(node, cli, spec):
    turn = Turn(node, spec, "slow 30")
    await turn.until_text("word1")
    turn.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await turn.task
    assert not cli.started[0].alive and len(node.warm) == 0


async def test_a_write_asks_through_the_handler_and_the_hooks_surround_it(node, cli, spec):
    handler = Handler()
    outcome = await Turn(node, spec, "write notes.txt: hello", handler=handler).outcome()
    assert isinstance(outcome, Done)
    assert handler.asked == ["before Write", "permission Write", "after Write"]
    assert (Path(spec.cwd) / "notes.txt").read_text() == "hello\n"
    denied = Handler(allow=False)
    await Turn(node, dataclasses.replace(spec, resume=True), "write other.txt: no", handler=denied).outcome()
    assert denied.asked == ["before Write", "permission Write"] and not (Path(spec.cwd) / "other.txt").exists()


async def test_the_pid_is_told_before_the_turn_runs(node, spec):
    turn = Turn(node, spec, "echo: hi")
    await turn.outcome()
    assert turn.pids == [None]  # a stand-in has no process of the system's
