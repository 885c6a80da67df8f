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
EXIT_POLL_SECONDS = 0.05
PIPES_CLOSE_SECONDS = 1.0
_UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


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
    except (TypeError, ValueError, OverflowError):
        return 0


def _float(value: Any) -> float:
    try:
        return float(value or 0.0)
    except (TypeError, ValueError):
        return 0.0


def _dict(value: Any) -> dict[str, Any]:
    # A field of the wrong shape must not end the turn with an exception: read it as empty.
    return value if isinstance(value, dict) else {}


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
        content = _dict(obj.get("message")).get("content")
        if isinstance(content, str):
            return [Text(text=content)] if kind == "assistant" else []
        events: list[Event] = []
        for block in content if isinstance(content, list) else []:
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
        event = _dict(obj.get("event"))
        delta = _dict(event.get("delta"))
        if event.get("type") == "content_block_delta" and delta.get("type") == "text_delta":
            return [TextDelta(text=str(delta.get("text", "")))]
        return []
    if kind == "result":
        usage = _dict(obj.get("usage"))
        errors = obj.get("errors") or []
        input_tokens = sum(_int(usage.get(k)) for k in
                           ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"))
        return [Result(
            is_error=bool(obj.get("is_error")),
            subtype=str(obj.get("subtype", "")),
            text=str(obj.get("result", "") or ""),
            session_id=str(obj.get("session_id", "")),
            duration_ms=_int(obj.get("duration_ms")),
            cost_usd=_float(obj.get("total_cost_usd")),
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


# ---------------------------------------------------------------------------------------
# Process handling

_live_groups: set[int] = set()


@dataclass(frozen=True)
class _Proc:
    pid: int
    pgid: int
    started: int  # clock ticks after boot: tells a process from a later one with the same pid


def _stat(pid: int) -> tuple[int, int, int, bool] | None:
    """(ppid, pgid, starttime, running) of a process from /proc, or None if there is none."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
        # The command name in parentheses may itself hold spaces and parentheses.
        fields = raw[raw.rindex(b")") + 2 :].split()
        return int(fields[1]), int(fields[2]), int(fields[19]), fields[0] not in (b"Z", b"X")
    except (OSError, ValueError, IndexError):
        return None


def _descendants(root: int) -> list[_Proc]:
    """Every living process below ``root``, found through /proc (empty where there is no /proc)."""
    children: dict[int, list[_Proc]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for name in entries:
        if not name.isdigit():
            continue
        stat = _stat(int(name))
        if stat is not None and stat[3]:
            children.setdefault(stat[0], []).append(_Proc(int(name), stat[1], stat[2]))
    found: list[_Proc] = []
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child.pid)
    return found


def _signal_procs(procs: Sequence[_Proc], sig: int) -> None:
    # Check each one is still the process seen before: its pid may have been reused since.
    same = [proc for proc in procs if (stat := _stat(proc.pid)) is not None and stat[2] == proc.started]
    for proc in same:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if proc.pgid == proc.pid:
                os.killpg(proc.pid, sig)
            else:
                os.kill(proc.pid, sig)


def _tree_of_leader(pgid: int) -> list[_Proc]:
    """The processes started by the leader of group ``pgid``, if that leader is alive."""
    stat = _stat(pgid)
    # Only a group leader with this id: a pid reused by an unrelated process must not be swept.
    if stat is None or not stat[3] or stat[1] != pgid:
        return []
    return _descendants(pgid)


def kill_group(pgid: int, sig: int = signal.SIGKILL) -> bool:
    """Signal a whole process group, and the processes its leader started in groups or sessions
    of their own (the CLI runs Bash tools with setsid); False if the group is already gone."""
    tree = _tree_of_leader(pgid)
    try:
        os.killpg(pgid, sig)
        gone = False
    except (ProcessLookupError, PermissionError):
        gone = True
    _signal_procs(tree, sig)
    return not gone


@atexit.register
def _kill_all_groups() -> None:
    # The CLI runs in its own session, so it would not die with this process: end it here.
    for pgid in list(_live_groups):
        kill_group(pgid)


def live_groups() -> frozenset[int]:
    return frozenset(_live_groups)


async def _exited(proc: asyncio.subprocess.Process) -> None:
    """Return once the CLI itself has exited."""
    # Not proc.wait(): that also waits for stdout and stderr to close, which never happens while
    # a process the CLI left behind still holds them; asyncio offers no other exit signal.
    while proc.returncode is None:  # noqa: ASYNC110
        await asyncio.sleep(EXIT_POLL_SECONDS)


async def _kill_leftovers(proc: asyncio.subprocess.Process) -> None:
    """Once the CLI exits, end what it left in its group, so that its pipes close and the turn ends."""
    await _exited(proc)
    kill_group(proc.pid, signal.SIGKILL)


async def _end_process(proc: asyncio.subprocess.Process, grace: float) -> None:
    """TERM the group and the CLI's tools, then KILL what is left after ``grace`` seconds."""
    tree: list[_Proc] = []
    if proc.returncode is None:
        # Seen now, while the CLI lives: once it is gone its tools are orphans nothing leads back from.
        tree = _descendants(proc.pid)
        kill_group(proc.pid, signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                await _exited(proc)
    # Tools the CLI started may still run in the group even after the CLI itself exited.
    kill_group(proc.pid, signal.SIGKILL)
    _signal_procs(tree, signal.SIGKILL)
    # Let the transport see its pipes close while the loop runs (else it is closed at garbage
    # collection, possibly after the loop). Bounded: a process outside the group may hold them.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(proc.wait(), PIPES_CLOSE_SECONDS)


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
    _live_groups.add(proc.pid)
    stderr = bytearray()
    stderr_task = asyncio.create_task(_drain(proc.stderr, stderr))
    reaper = asyncio.create_task(_kill_leftovers(proc))
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
        await asyncio.shield(_end_process(proc, spec.kill_grace))
        _live_groups.discard(proc.pid)
