"""A hung test fails alone, with its stacks, instead of stalling the whole run until CI's limit.

pytest-timeout (``timeout`` in pyproject) interrupts the test with SIGALRM, which also breaks a
loop that spins without yielding. What it prints is the threads' stacks; a hang in our runtime
is usually in an asyncio task, so those are printed too. If the teardown then hangs as well,
faulthandler prints every thread and ends the run after a grace period.
"""

from __future__ import annotations

import asyncio
import faulthandler
import signal
import sys
from collections.abc import Generator
from typing import Any

import pytest

GRACE_SECONDS = 120


def _print_tasks() -> None:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return  # a synchronous test: the threads' stacks say it all
    out = sys.__stderr__
    for task in asyncio.all_tasks(loop):
        print(f"--- asyncio task {task.get_name()}", file=out)
        task.print_stack(file=out)


@pytest.hookimpl(wrapper=True)
def pytest_timeout_set_timer(item: pytest.Item, settings: Any) -> Generator[None, Any, Any]:
    result = yield
    inner = signal.getsignal(signal.SIGALRM)
    if callable(inner):

        def on_timeout(signum: int, frame: Any) -> None:
            _print_tasks()
            faulthandler.dump_traceback_later(GRACE_SECONDS, exit=True, file=sys.__stderr__)
            inner(signum, frame)

        signal.signal(signal.SIGALRM, on_timeout)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_timeout_cancel_timer(item: pytest.Item) -> Generator[None, Any, Any]:
    faulthandler.cancel_dump_traceback_later()
    return (yield)
