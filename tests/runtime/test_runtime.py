"""The runtime as a whole (runtime/__init__.py): waiting for it to be idle always ends."""

from __future__ import annotations

import asyncio

import pytest

from runtime import Runtime
from tests.runtime.test_scheduler import Hooks


@pytest.mark.timeout(20)
async def test_idle_returns_when_a_task_finished_in_the_step_before():
    # The finished run is still listed as running until its done callback runs, which is queued
    # behind the caller: idle() must yield to it rather than spin on a list that never changes.
    hooks = Hooks()
    built = Runtime(max_processes=2, max_tasks=2, task_hooks=hooks)
    hooks.scheduler = built.tasks
    hooks.queue.append(1)
    built.tasks.kick()
    await asyncio.wait_for(hooks.started[1].wait(), 5)
    hooks.finish(1)
    await asyncio.sleep(0)  # the run ends in this step; its done callback comes after it
    await built.idle()
    assert hooks.finished == [1] and not built.tasks.running
    await built.shutdown()
