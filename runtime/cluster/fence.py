"""The fence of an engine node: a watchdog process of its own that ends the node's CLI processes when
the node stops beating (``python -m runtime.cluster.fence SECONDS``).

No Django imports. The engine writes a line to the fence's stdin after each heartbeat that reached the
database: the process group ids of the CLI processes it holds. When no line comes for SECONDS (the
database is out of reach, or the engine is frozen: stopped, swapped out, its loop blocked), the fence
ends those process groups and the engine itself, before the janitor of another node (which waits
twice as long) gives the node's sessions to others: two nodes never run one transcript. A separate
process, because a frozen engine can do nothing itself. When the engine exits (its stdin closes),
so does the fence.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import time

from drivers.claude.proctree import kill_group


def watch(after: float, engine: int) -> int:
    groups: list[int] = []
    last = time.monotonic()
    buffered = b""
    while True:
        ready, _, _ = select.select([0], [], [], max(0.05, after - (time.monotonic() - last)))
        if ready:
            chunk = os.read(0, 65536)
            if not chunk:
                return 0  # the engine has exited
            buffered += chunk
            *lines, buffered = buffered.split(b"\n")
            if lines:
                groups = [int(word) for word in lines[-1].split()]
                last = time.monotonic()
        if time.monotonic() - last > after:
            print(
                f"fence: node {os.environ.get('CLAUDE_NODE_ID', '?')} has not reached the database for {after:g} s: "
                f"ending its {len(groups)} CLI process group(s) and the engine (pid {engine})",
                file=sys.stderr,
                flush=True,
            )
            for group in groups:
                with contextlib.suppress(OSError):
                    kill_group(group)
            with contextlib.suppress(OSError):
                os.kill(engine, signal.SIGKILL)
            return 75


if __name__ == "__main__":
    sys.exit(watch(float(sys.argv[1]), os.getppid()))
