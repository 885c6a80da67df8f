"""Running one command to its end in an agent's sandbox: its output (the end of it) and exit code.

No Django imports. For commands a person configured to run beside an agent (a project's setup and
check commands): started with an argv list, never through a server-side shell, with no stdin, in
a session of its own; ended with everything it started when its time is up or its caller is
cancelled. Its stdout and stderr are read together, as a terminal would show them, and only the
last ``keep`` bytes are kept: a command that prints without end cannot fill the server's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .proctree import descendants, end_tree
from .sandbox import Sandbox, launch

READ_BYTES = 64 * 1024


@dataclass(frozen=True)
class CommandResult:
    code: int | None  # None: ended because its time was up
    output: str  # the last ``keep`` bytes of stdout and stderr, decoded (invalid bytes replaced)
    truncated: bool  # its beginning was cut
    timed_out: bool


async def run_command(
    argv: Sequence[str],
    *,
    sandbox: Sandbox | None,
    cwd: str | os.PathLike[str],
    env: Mapping[str, str],
    timeout: float,  # noqa: ASYNC109
    keep: int,
) -> CommandResult:
    """Run ``argv`` in ``cwd`` with exactly ``env``: inside ``sandbox`` (see :func:`sandbox.launch`),
    or as the server itself when there is none (the sandbox is off)."""
    if sandbox is not None:
        started = launch(sandbox, argv, cwd=cwd, env=env)
        full, run_env, run_cwd = started.argv, {}, "/"
    else:
        full, run_env, run_cwd = list(argv), dict(env), os.fspath(cwd)
    try:
        proc = await asyncio.create_subprocess_exec(
            *full,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=run_env,
            cwd=run_cwd,
            start_new_session=True,
        )
    except BaseException:
        if sandbox is not None:
            started.discard()
        raise
    tail = bytearray()
    cut = False

    async def read() -> None:
        nonlocal cut
        assert proc.stdout is not None
        while chunk := await proc.stdout.read(READ_BYTES):
            tail.extend(chunk)
            if len(tail) > keep:
                del tail[: len(tail) - keep]
                cut = True

    timed_out = False
    try:
        async with asyncio.timeout(timeout):
            await read()
            await proc.wait()
    except TimeoutError:
        timed_out = True
        await _end(proc)
    except BaseException:
        # Cancelled (the task paused or terminated, the server stopping): nothing it started outlives it.
        await asyncio.shield(_end(proc))
        raise
    return CommandResult(
        code=None if timed_out else proc.returncode,
        output=bytes(tail).decode("utf-8", "replace"),
        truncated=cut,
        timed_out=timed_out,
    )


async def _end(proc: asyncio.subprocess.Process) -> None:
    end_tree(proc.pid, descendants(proc.pid))
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # its own session: what it started there (no sandbox)
    await proc.wait()
