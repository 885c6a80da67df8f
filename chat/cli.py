"""Driver for the Claude Code CLI: argv, process, stream-json events.

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
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import proctree
from .cli_events import (
    Event,
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
    Unknown,
    parse_event,
    parse_line,
)
from .proctree import kill_group, live_groups

__all__ = [
    "CliNotFound",
    "Event",
    "Exit",
    "Garbage",
    "Init",
    "Notice",
    "Oversized",
    "Result",
    "Text",
    "TextDelta",
    "ToolResult",
    "ToolUse",
    "TurnSpec",
    "Unknown",
    "WorkdirMissing",
    "build_argv",
    "encode_project_dir",
    "is_uuid",
    "kill_group",
    "live_groups",
    "parse_event",
    "parse_line",
    "run_turn",
    "transcript_path",
]

# Tool results and images make lines of several MB; a line longer than this is dropped
# (and reported as Oversized) instead of holding all of it in memory.
MAX_LINE_BYTES = 32 * 1024 * 1024
STDERR_KEEP_BYTES = 64 * 1024
KILL_GRACE_SECONDS = 2.0
_UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


# ---------------------------------------------------------------------------------------
# argv and paths


def is_uuid(value: str) -> bool:
    # fullmatch: "$" would also accept a trailing newline, which would end up in argv and file names.
    return isinstance(value, str) and bool(_UUID_RE.fullmatch(value))


def build_argv(
    cli: str,
    *,
    session_id: str,
    resume: bool,
    permission_mode: str | None = None,
    skip_permissions: bool = False,
    allowed_tools: Sequence[str] = (),
    settings_json: str | None = None,
    partial_messages: bool = True,
) -> list[str]:
    """The argv of one ``--print`` turn; the message itself goes to stdin, never argv."""
    if not is_uuid(session_id):
        raise ValueError(f"not a session UUID: {session_id!r}")
    argv = [cli, "--print", "--output-format", "stream-json", "--verbose"]
    if partial_messages:
        argv.append("--include-partial-messages")
    # The "=" form keeps a value from ever being read as a flag.
    argv.append(f"--resume={session_id}" if resume else f"--session-id={session_id}")
    if skip_permissions:
        argv.append("--dangerously-skip-permissions")
    elif permission_mode:
        argv.append(f"--permission-mode={permission_mode}")
    if allowed_tools:
        argv.append("--allowedTools=" + ",".join(allowed_tools))
    if settings_json:
        argv.append(f"--settings={settings_json}")
    return argv


# The CLI cuts longer folder names and appends a hash of the whole path.
PROJECT_DIR_MAX = 200
_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"


def _utf16_units(text: str) -> list[int]:
    # The CLI works on JavaScript strings: a character beyond U+FFFF counts as two units.
    data = text.encode("utf-16-le", "surrogatepass")
    return [int.from_bytes(data[i : i + 2], "little") for i in range(0, len(data), 2)]


def _js_string_hash(units: Sequence[int]) -> int:
    """The CLI's ``(h << 5) - h + charCode | 0`` over a string: a signed 32-bit Java-style hash."""
    h = 0
    for unit in units:
        h = (h * 31 + unit) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def _base36(number: int) -> str:
    digits = ""
    while True:
        number, digit = divmod(number, 36)
        digits = _BASE36[digit] + digits
        if not number:
            return digits


def encode_project_dir(cwd: str | os.PathLike[str]) -> str:
    """The CLI's folder name for a working directory: every character that is not an ASCII letter
    or digit becomes '-' (two for a character beyond U+FFFF); a name over 200 characters is cut
    and gets a hash of the whole path appended."""
    units = _utf16_units(str(cwd))
    encoded = "".join(chr(u) if chr(u).isascii() and chr(u).isalnum() else "-" for u in units)
    if len(encoded) <= PROJECT_DIR_MAX:
        return encoded
    return f"{encoded[:PROJECT_DIR_MAX]}-{_base36(abs(_js_string_hash(units)))}"


def transcript_path(config_dir: str | os.PathLike[str], cwd: str | os.PathLike[str], session_id: str) -> Path:
    """Where the CLI keeps the transcript of a session run in ``cwd``."""
    if not is_uuid(session_id):
        raise ValueError(f"not a session UUID: {session_id!r}")
    # The CLI names the folder after its process cwd, in which symlinks are already resolved.
    real_cwd = os.path.realpath(cwd)
    return Path(config_dir) / "projects" / encode_project_dir(real_cwd) / f"{session_id.lower()}.jsonl"


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
    """Everything one turn needs; the environment is the server's plus ``env``."""

    argv: list[str]
    prompt: str
    cwd: str
    env: Mapping[str, str] = field(default_factory=dict)
    max_line_bytes: int = MAX_LINE_BYTES
    kill_grace: float = KILL_GRACE_SECONDS


class CliNotFound(Exception):
    """The ``claude`` executable is not where the settings say."""


class WorkdirMissing(Exception):
    """The working directory of the turn does not exist."""


async def run_turn(spec: TurnSpec, *, on_spawn: Any = None) -> AsyncIterator[Event]:
    """Run one turn and yield its events, ending with :class:`Exit`.

    ``on_spawn(pid)`` is called once the process exists (the pid is also its process
    group id), so a caller can record it for recovery after a crash.
    """
    env = {**os.environ, **spec.env}
    try:
        proc = await asyncio.create_subprocess_exec(
            *spec.argv,
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
            raise CliNotFound(spec.argv[0]) from exc
        if isinstance(exc, PermissionError):
            raise CliNotFound(f"{spec.argv[0]} (not executable)") from exc
        raise CliNotFound(f"{spec.argv[0]} ({exc.strerror})") from exc
    proctree.track(proc.pid)
    stderr = bytearray()
    stderr_task = asyncio.create_task(_drain(proc.stderr, stderr))
    reaper = asyncio.create_task(proctree.kill_leftovers(proc))
    try:
        if on_spawn is not None and inspect.isawaitable(spawned := on_spawn(proc.pid)):
            await spawned
        assert proc.stdin is not None and proc.stdout is not None
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
