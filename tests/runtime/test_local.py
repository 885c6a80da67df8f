"""The engine in this process (runtime/local.py) as a whole: waiting for it to be idle always ends."""

from __future__ import annotations

import asyncio

import pytest

from runtime import Engine, LocalEngine, NodeRuntime
from tests.fake_session import FakeCli
from tests.runtime.test_scheduler import Hooks


class EngineHooks(Hooks):
    """The scheduler tests' hooks, as the engine calls them (with itself handed to each run)."""

    async def run(self, task_id: int, *, engine: Engine | None = None) -> None:  # type: ignore[override]
        await super().run(task_id)


class NoTurns:
    async def waiting(self, turn: int) -> None: ...

    async def run(self, turn: int, *, node: NodeRuntime, local: object) -> None: ...

    async def dropped(self, turn: int, *, reason: object, note: str) -> None: ...


@pytest.mark.timeout(20)
async def test_idle_returns_when_a_task_finished_in_the_step_before():
    # The finished run is still listed as running until its done callback runs, which is queued
    # behind the caller: idle() must yield to it rather than spin on a list that never changes.
    hooks = EngineHooks()
    built = LocalEngine(
        node=NodeRuntime(factory=FakeCli(), max_processes=2), turn_hooks=NoTurns(), task_hooks=hooks, max_tasks=2
    )
    hooks.scheduler = built.tasks
    hooks.queue.append(1)
    built.kick_tasks()
    await asyncio.wait_for(hooks.started[1].wait(), 5)
    hooks.finish(1)
    await asyncio.sleep(0)  # the run ends in this step; its done callback comes after it
    await built.idle()
    assert hooks.finished == [1] and not built.tasks.running
    await built.shutdown()
