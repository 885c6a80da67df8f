"""Driver for the Claude Code CLI: argv, process, stream-json events.

A plain async module with no Django imports. One call of :func:`run_turn` runs one turn:
it spawns ``claude --print`` in its own process group, writes the message to stdin, and
yields typed events parsed from ``--output-format stream-json``. Leaving the iteration
early (cancel, timeout, ``break``) ends the whole process group, so no CLI process and
none of the tools it started outlive the turn.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import inspect
import json
import os
import re
import signal
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Tool results and images make lines of several MB; a line longer than this is dropped
# (and reported as Oversized) instead of holding all of it in memory.
MAX_LINE_BYTES = 32 * 1024 * 1024
STDERR_KEEP_BYTES = 64 * 1024
KILL_GRACE_SECONDS = 2.0
_UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


# ---------------------------------------------------------------------------------------
# Events


@dataclass(frozen=True)
class Init:
    session_id: str
    cwd: str
    model: str


@dataclass(frozen=True)
class TextDelta:
    """A piece of assistant text as it streams (from ``--include-partial-messages``)."""

    text: str


@dataclass(frozen=True)
class Text:
    """A complete assistant text block."""

    text: str


@dataclass(frozen=True)
class ToolUse:
    id: str
    name: str
    input: dict[str, Any]


@dataclass(frozen=True)
class ToolResult:
    tool_use_id: str
    content: str
    is_error: bool


@dataclass(frozen=True)
class Notice:
    """A ``system`` event other than init (permission_denied, api_retry, status, ...)."""

    subtype: str
    data: dict[str, Any]


@dataclass(frozen=True)
class Result:
    is_error: bool
    subtype: str
    text: str
    session_id: str
    duration_ms: int
    cost_usd: float
    input_tokens: int
    output_tokens: int
    errors: tuple[str, ...] = ()


@dataclass(frozen=True)
class Unknown:
    """A JSON event of a type this driver does not know; kept, never fatal."""

    type: str
    data: dict[str, Any]


@dataclass(frozen=True)
class Garbage:
    """A stdout line that is not JSON (the CLI prints some errors this way)."""

    line: str


@dataclass(frozen=True)
class Oversized:
    """A line longer than the limit, dropped unread."""

    size: int


@dataclass(frozen=True)
class Exit:
    """Always the last event of a turn: how the process ended."""

    returncode: int
    stderr: str


Event = Init | TextDelta | Text | ToolUse | ToolResult | Notice | Result | Unknown | Garbage | Oversized | Exit


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for block in content:
            if isinstance(block, dict):
                if block.get("type") == "text":
                    parts.append(str(block.get("text", "")))
                elif block.get("type") == "image":
                    parts.append("[image]")
        return "\n".join(parts)
    return "" if content is None else str(content)


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def parse_event(obj: dict[str, Any]) -> list[Event]:
    """Typed events from one decoded stream-json object (an assistant message may hold several)."""
    kind = obj.get("type")
    if kind == "system":
        subtype = str(obj.get("subtype", ""))
        if subtype == "init":
            return [Init(session_id=str(obj.get("session_id", "")), cwd=str(obj.get("cwd", "")),
                         model=str(obj.get("model", "")))]
        return [Notice(subtype=subtype, data=obj)]
    if kind in ("assistant", "user"):
        message = obj.get("message") or {}
        content = message.get("content")
        if isinstance(content, str):
            return [Text(text=content)] if kind == "assistant" else []
        events: list[Event] = []
        for block in content or []:
            if not isinstance(block, dict):
                continue
            btype = block.get("type")
            if btype == "text" and kind == "assistant":
                events.append(Text(text=str(block.get("text", ""))))
            elif btype == "tool_use":
                tool_input = block.get("input")
                events.append(ToolUse(id=str(block.get("id", "")), name=str(block.get("name", "")),
                                      input=tool_input if isinstance(tool_input, dict) else {"value": tool_input}))
            elif btype == "tool_result":
                events.append(ToolResult(tool_use_id=str(block.get("tool_use_id", "")),
                                         content=_content_text(block.get("content")),
                                         is_error=bool(block.get("is_error"))))
        return events
    if kind == "stream_event":
        event = obj.get("event") or {}
        delta = event.get("delta") or {}
        if event.get("type") == "content_block_delta" and delta.get("type") == "text_delta":
            return [TextDelta(text=str(delta.get("text", "")))]
        return []
    if kind == "result":
        usage = obj.get("usage") or {}
        errors = obj.get("errors") or []
        input_tokens = sum(_int(usage.get(k)) for k in
                           ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"))
        return [Result(
            is_error=bool(obj.get("is_error")),
            subtype=str(obj.get("subtype", "")),
            text=str(obj.get("result", "") or ""),
            session_id=str(obj.get("session_id", "")),
            duration_ms=_int(obj.get("duration_ms")),
            cost_usd=float(obj.get("total_cost_usd") or 0.0),
            input_tokens=input_tokens,
            output_tokens=_int(usage.get("output_tokens")),
            errors=tuple(str(e) for e in errors) if isinstance(errors, list) else (str(errors),),
        )]
    return [Unknown(type=str(kind), data=obj)]


def parse_line(line: bytes | str) -> list[Event]:
    """Typed events from one stdout line; blank lines give none, non-JSON gives Garbage."""
    text = line.decode("utf-8", errors="replace") if isinstance(line, bytes) else line
    text = text.strip()
    if not text:
        return []
    try:
        obj = json.loads(text)
    except ValueError:
        return [Garbage(line=text[:2000])]
    if not isinstance(obj, dict):
        return [Garbage(line=text[:2000])]
    return parse_event(obj)


# ---------------------------------------------------------------------------------------
# argv and paths


def is_uuid(value: str) -> bool:
    return bool(_UUID_RE.match(value or ""))


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


def encode_project_dir(cwd: str | os.PathLike[str]) -> str:
    """The CLI's folder name for a working directory: every non-alphanumeric character is '-'."""
    return re.sub(r"[^A-Za-z0-9]", "-", str(cwd))


def transcript_path(config_dir: str | os.PathLike[str], cwd: str | os.PathLike[str], session_id: str) -> Path:
    if not is_uuid(session_id):
        raise ValueError(f"not a session UUID: {session_id!r}")
    return Path(config_dir) / "projects" / encode_project_dir(cwd) / f"{session_id.lower()}.jsonl"


# ---------------------------------------------------------------------------------------
# Process handling

_live_groups: set[int] = set()


def kill_group(pgid: int, sig: int = signal.SIGKILL) -> bool:
    """Signal a whole process group; False if it is already gone."""
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


@atexit.register
def _kill_all_groups() -> None:
    # The CLI runs in its own session, so it would not die with this process: end it here.
    for pgid in list(_live_groups):
        kill_group(pgid)


def live_groups() -> frozenset[int]:
    return frozenset(_live_groups)


async def _end_process(proc: asyncio.subprocess.Process, grace: float) -> None:
    """TERM the group, then KILL it if it has not gone within ``grace`` seconds."""
    if proc.returncode is None:
        kill_group(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), grace)
        except TimeoutError:
            pass
    # Tools the CLI started may still run in the group even after the CLI itself exited.
    kill_group(proc.pid, signal.SIGKILL)
    if proc.returncode is None:
        await proc.wait()


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
    except FileNotFoundError as exc:
        if not Path(spec.cwd).is_dir():
            raise WorkdirMissing(spec.cwd) from exc
        raise CliNotFound(spec.argv[0]) from exc
    except PermissionError as exc:
        raise CliNotFound(f"{spec.argv[0]} (not executable)") from exc
    _live_groups.add(proc.pid)
    stderr = bytearray()
    stderr_task = asyncio.create_task(_drain(proc.stderr, stderr))
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
        await asyncio.shield(_end_process(proc, spec.kill_grace))
        _live_groups.discard(proc.pid)
