"""Running one Claude Code turn as a process: spawn, feed the message, read stream-json events.

A plain async module with no Django imports. One call of :func:`run_turn` runs one turn:
it spawns ``claude --print`` in its own process group, writes the message to stdin, and
yields typed events parsed from ``--output-format stream-json``. Leaving the iteration
early (cancel, timeout, ``break``) ends the whole process group, so no CLI process and
none of the tools it started outlive the turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import proctree
from .events import Event, Exit, Oversized, parse_line
from .sandbox import Sandbox, wrap

# Tool results and images make lines of several MB; a line longer than this is dropped
# (and reported as Oversized) instead of holding all of it in memory.
MAX_LINE_BYTES = 32 * 1024 * 1024
STDERR_KEEP_BYTES = 64 * 1024
KILL_GRACE_SECONDS = 2.0


async def _lines(stream: asyncio.StreamReader, max_line: int) -> AsyncIterator[bytes | int]:
    """Lines of ``stream``; a line over ``max_line`` bytes is skipped and its size yielded."""
    buffer = bytearray()
    skipping = 0
    while True:
        chunk = await stream.read(256 * 1024)
        if not chunk:
            break
        start = 0
        while True:
            newline = chunk.find(b"\n", start)
            piece = chunk[start:] if newline < 0 else chunk[start:newline]
            if skipping:
                skipping += len(piece)
            else:
                buffer += piece
                if len(buffer) > max_line:
                    skipping = len(buffer)
                    buffer.clear()
            if newline < 0:
                break
            if skipping:
                yield skipping
                skipping = 0
            else:
                yield bytes(buffer)
                buffer.clear()
            start = newline + 1
    if skipping:
        yield skipping
    elif buffer:
        yield bytes(buffer)


async def _drain(stream: asyncio.StreamReader, keep: bytearray) -> None:
    while chunk := await stream.read(65536):
        keep += chunk
        if len(keep) > STDERR_KEEP_BYTES:
            del keep[: len(keep) - STDERR_KEEP_BYTES]


@dataclass
class TurnSpec:
    """Everything one turn needs.

    ``env`` is the CLI's whole environment (nothing of the server's is added: its secrets stay
    out). With a ``sandbox`` the CLI runs inside bubblewrap (see :mod:`drivers.claude.sandbox`).
    """

    argv: list[str]
    prompt: str
    cwd: str
    env: Mapping[str, str] = field(default_factory=dict)
    sandbox: Sandbox | None = None
    max_line_bytes: int = MAX_LINE_BYTES
    kill_grace: float = KILL_GRACE_SECONDS

    def command(self) -> tuple[list[str], dict[str, str]]:
        """The argv and environment of the process to start."""
        if self.sandbox is None:
            return list(self.argv), dict(self.env)
        # Inside the sandbox a missing program is only bwrap's exit code: say what is missing here.
        if not os.access(self.argv[0], os.X_OK):
            raise CliNotFound(self.argv[0] if not os.path.exists(self.argv[0]) else f"{self.argv[0]} (not executable)")
        argv = wrap(self.sandbox, self.argv, cwd=self.cwd, env=self.env)
        return argv, {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}


class CliNotFound(Exception):
    """The ``claude`` executable is not where the settings say."""


class WorkdirMissing(Exception):
    """The working directory of the turn does not exist."""


async def run_turn(spec: TurnSpec, *, on_spawn: Any = None) -> AsyncGenerator[Event]:
    """Run one turn and yield its events, ending with :class:`Exit`.

    ``on_spawn(pid)`` is called once the process exists (the pid is also its process
    group id), so a caller can record it for recovery after a crash.
    """
    argv, env = spec.command()
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=spec.cwd,
            env=env,
            start_new_session=True,
        )
    except OSError as exc:
        # The child reports a failed chdir with the cwd as filename, a failed exec with the program.
        if exc.filename is not None and os.fspath(exc.filename) == os.fspath(spec.cwd):
            raise WorkdirMissing(spec.cwd) from exc
        if isinstance(exc, FileNotFoundError):
            raise CliNotFound(argv[0]) from exc
        if isinstance(exc, PermissionError):
            raise CliNotFound(f"{argv[0]} (not executable)") from exc
        raise CliNotFound(f"{argv[0]} ({exc.strerror})") from exc
    proctree.track(proc.pid)
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    stderr = bytearray()
    stderr_task = asyncio.create_task(_drain(proc.stderr, stderr))
    reaper = asyncio.create_task(proctree.kill_leftovers(proc))
    try:
        if on_spawn is not None and inspect.isawaitable(spawned := on_spawn(proc.pid)):
            await spawned
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            proc.stdin.write(spec.prompt.encode())
            await proc.stdin.drain()
            proc.stdin.close()
        async for line in _lines(proc.stdout, spec.max_line_bytes):
            if isinstance(line, int):
                yield Oversized(size=line)
                continue
            for event in parse_line(line):
                yield event
        await proc.wait()
        await stderr_task
        yield Exit(returncode=proc.returncode or 0, stderr=stderr.decode("utf-8", errors="replace"))
    finally:
        stderr_task.cancel()
        reaper.cancel()
        await asyncio.shield(proctree.end_process(proc, spec.kill_grace))
        proctree.untrack(proc.pid)
