"""The CLI's process behind the Agent SDK's public ``Transport`` interface: started, read and ended here.

No Django imports. The SDK speaks the control protocol over whatever :class:`CliTransport` gives
it (``ClaudeSDKClient(options, transport=...)``), and applies none of its options as CLI flags to
a transport of ours: :func:`cli_argv` builds them from the :class:`LiveSpec`, as the SDK's own
subprocess transport would from the same options (a test compares the two). The process is ours,
so its pid, its exit code and its stderr are read here, from nothing private of the SDK's.

The CLI gets exactly the caller's environment and the SDK's own variables. In the sandbox, bwrap
starts with an empty environment and its options from a private file (:func:`sandbox.launch`):
its command line and environment, which the agent can read at ``/proc/1``, name none of the
server's variables or paths. setsid(1) makes the process lead a group of its own, so that what it
leaves behind when it exits can still be found and ended. Every wrapper execs: the pid stays the
CLI's (or, in the sandbox, bwrap's).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
from collections.abc import AsyncIterator, Callable
from typing import Any

from claude_agent_sdk import CLIConnectionError, CLIJSONDecodeError, CLINotFoundError, ProcessError, Transport
from claude_agent_sdk import __version__ as SDK_VERSION

from .sandbox import Launch, launch
from .spec import LiveSpec

# How long the tail of stderr may take to arrive once the process has exited.
STDERR_DRAIN_SECONDS = 0.5
# What the SDK's own transport sets in the CLI's environment, kept: its entry point and version, the
# session-state frames its Query reads (it waits for "idle" before it closes stdin), and PWD.
ENTRYPOINT = "sdk-py"
_READ_CHUNK = 64 * 1024


def cli_argv(spec: LiveSpec, *, ask: bool) -> list[str]:
    """The CLI's argv for ``spec``: the flags the SDK's subprocess transport gives the same options
    (claude-agent-sdk 0.2.187), in its order. ``ask``: permission prompts come back over the control
    protocol (its "stdio" prompt tool), as they do when a ``can_use_tool`` callback is set.

    Ids and the model go as ``--flag=value``: no value can ever be read as a flag of its own."""
    argv = [spec.cli, "--output-format", "stream-json", "--verbose"]
    if spec.allowed_tools:
        argv += ["--allowedTools", ",".join(spec.allowed_tools)]
    if spec.model:
        argv.append(f"--model={spec.model}")
    if ask:
        argv += ["--permission-prompt-tool", "stdio"]
    mode = "bypassPermissions" if spec.skip_permissions else spec.permission_mode
    if mode:
        argv += ["--permission-mode", mode]
    argv.append(f"--resume={spec.session_id}" if spec.resume else f"--session-id={spec.session_id}")
    # The working directory as an added one, with CLAUDE_CODE_ADDITIONAL_DIRECTORIES_CLAUDE_MD (see
    # cli_env), is how the CLI reads its CLAUDE.md files (project memory) while no settings source
    # is loaded: "project" would also load .claude/settings.json, whose permissions and hooks an
    # agent could write for itself. The path is the server's, absolute: never read as a flag.
    argv += ["--add-dir", spec.cwd]
    if spec.mcp_config:
        # The admin's MCP servers, as JSON (it starts with "{": never read as a flag; the flag after
        # it ends the CLI's list of configs).
        argv += ["--mcp-config", spec.mcp_config]
    # Text streams as it is written. Only the servers above are started: none of an .mcp.json or a
    # config file the agent can write (its folder, its config folder).
    argv += ["--include-partial-messages", "--strict-mcp-config"]
    if spec.resume and spec.resume_at:
        # The SDK's resume_session_at; the id as one word, so that no value can be read as a flag.
        argv.append(f"--resume-session-at={spec.resume_at}")
    # No settings file of the machine's or the project's is read.
    argv += ["--setting-sources=", "--input-format", "stream-json"]
    return argv


def cli_env(spec: LiveSpec) -> dict[str, str]:
    """All the CLI's environment: the caller's, and the variables the SDK's own transport sets."""
    env = {"CLAUDE_CODE_ENTRYPOINT": ENTRYPOINT, **spec.env, "CLAUDE_AGENT_SDK_VERSION": SDK_VERSION}
    env.setdefault("CLAUDE_CODE_SDK_READS_SESSION_STATE", "1")
    # A caller that names no PATH gets the server's, as the SDK's transport let through.
    env.setdefault("PATH", os.environ.get("PATH", os.defpath))
    env["PWD"] = spec.cwd
    # The added directory's CLAUDE.md, .claude/CLAUDE.md and what they import are read at the start
    # (see cli_argv): the project's memory, without the project's settings.
    env["CLAUDE_CODE_ADDITIONAL_DIRECTORIES_CLAUDE_MD"] = "1"
    if spec.file_checkpoints:
        env["CLAUDE_CODE_ENABLE_SDK_FILE_CHECKPOINTING"] = "true"  # what the SDK's enable_file_checkpointing sets
    return env


class CliTransport(Transport):
    """One CLI process for the SDK's client: started by :meth:`connect`, ended by :meth:`close`
    (stdin first, then SIGTERM and SIGKILL to its process group, each after ``close_grace``)."""

    def __init__(self, spec: LiveSpec, *, ask: bool, on_stderr: Callable[[str], None]) -> None:
        self.spec = spec
        self._argv = cli_argv(spec, ask=ask)
        self._on_stderr = on_stderr
        self._process: asyncio.subprocess.Process | None = None
        self._stderr_reader: asyncio.Task[None] | None = None
        self._launch: Launch | None = None
        self._write_lock = asyncio.Lock()
        self._input_open = False

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def returncode(self) -> int | None:
        """The exit code; None while it runs (or before it started)."""
        return self._process.returncode if self._process is not None else None

    async def connect(self) -> None:
        if self._process is not None:
            return
        argv, env = self._argv, cli_env(self.spec)
        if self.spec.sandbox is not None:
            self._launch = launch(self.spec.sandbox, argv, cwd=self.spec.cwd, env=env)
            # The launcher (outside) needs only a PATH; bwrap itself starts with nothing (env -i).
            argv, env = self._launch.argv, {"PATH": env["PATH"]}
        setsid = shutil.which("setsid")
        if setsid:
            argv = [setsid, "--wait", *argv]
        try:
            self._process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=self.spec.cwd,
                env=env,
                # A line may be one tool result of several MB; one over the limit ends the session.
                limit=self.spec.max_line_bytes,
            )
        except FileNotFoundError as exc:
            self._discard_launch()
            if not os.path.isdir(self.spec.cwd):
                raise CLIConnectionError(f"Working directory does not exist: {self.spec.cwd}") from exc
            raise CLINotFoundError(f"Claude Code not found at: {self.spec.cli}") from exc
        except OSError as exc:
            self._discard_launch()
            raise CLIConnectionError(f"Failed to start Claude Code: {exc}") from exc
        self._input_open = True
        self._stderr_reader = asyncio.create_task(self._read_stderr(), name=f"claude-stderr-{self.spec.session_id}")

    def is_ready(self) -> bool:
        return self._input_open and self._process is not None and self._process.returncode is None

    async def write(self, data: str) -> None:
        async with self._write_lock:
            process = self._process
            if process is None or process.stdin is None or not self._input_open:
                raise CLIConnectionError("The Claude Code process is not ready for writing")
            if process.returncode is not None:
                raise CLIConnectionError(f"Cannot write to terminated process (exit code: {process.returncode})")
            try:
                process.stdin.write(data.encode())
                await process.stdin.drain()
            except (OSError, RuntimeError) as exc:
                self._input_open = False
                raise CLIConnectionError(f"Failed to write to process stdin: {exc}") from exc

    async def end_input(self) -> None:
        async with self._write_lock:
            self._close_stdin()

    def _close_stdin(self) -> None:
        self._input_open = False
        stdin = self._process.stdin if self._process is not None else None
        if stdin is not None and not stdin.is_closing():
            stdin.close()

    def read_messages(self) -> AsyncIterator[dict[str, Any]]:
        return self._read_messages()

    async def _read_messages(self) -> AsyncIterator[dict[str, Any]]:
        process = self._process
        if process is None or process.stdout is None:
            raise CLIConnectionError("Not connected")
        limit = self.spec.max_line_bytes
        while True:
            try:
                raw = await process.stdout.readline()
            except ValueError as exc:  # asyncio's LimitOverrunError, as readline() raises it
                raise CLIJSONDecodeError(f"JSON message exceeded maximum buffer size of {limit} bytes", exc) from exc
            if not raw:
                break
            line = raw.decode(errors="replace").strip()
            # Blank lines and plain text some CLI builds print carry no message.
            if not line.startswith("{"):
                continue
            try:
                message = json.loads(line)
            except json.JSONDecodeError as exc:
                raise CLIJSONDecodeError(line, exc) from exc
            if isinstance(message, dict):
                yield message
        code = await process.wait()
        if code != 0:
            raise ProcessError(f"Command failed with exit code {code}", exit_code=code, stderr="see stderr")

    async def _read_stderr(self) -> None:
        """Pass stderr on line by line (read alongside stdout: a CLI with much to say would block)."""
        process = self._process
        assert process is not None and process.stderr is not None
        pending = b""
        try:
            while chunk := await process.stderr.read(_READ_CHUNK):
                *lines, pending = (pending + chunk).split(b"\n")
                for line in lines:
                    self._emit(line)
                if len(pending) > self.spec.max_line_bytes:  # no newline for ever: passed on as it is
                    self._emit(pending)
                    pending = b""
        finally:
            self._emit(pending)

    def _emit(self, line: bytes) -> None:
        text = line.decode(errors="replace").rstrip()
        if text:
            self._on_stderr(text)

    async def stderr_drained(self) -> None:
        """Give the stderr reader a moment to pass on the last lines of an exited process."""
        reader = self._stderr_reader
        if reader is not None and not reader.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(reader), STDERR_DRAIN_SECONDS)

    async def close(self) -> None:
        """Close stdin (the CLI flushes its transcript and exits); after the grace, SIGTERM to its
        group, after as long again SIGKILL. Bounded: it never waits more than about three graces."""
        process = self._process
        if process is None:
            self._discard_launch()
            return
        async with contextlib.AsyncExitStack() as stack:
            stack.callback(self._discard_launch)
            stack.push_async_callback(self._stop_reading)
            self._close_stdin()
            grace = self.spec.close_grace
            for sig in (signal.SIGTERM, signal.SIGKILL, None):
                try:
                    async with asyncio.timeout(grace):
                        await process.wait()
                    break
                except TimeoutError:
                    if sig is not None:
                        self._signal_group(process.pid, sig)

    def _signal_group(self, pid: int, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if os.getpgid(pid) == pid:
                os.killpg(pid, sig)
            else:
                os.kill(pid, sig)

    async def _stop_reading(self) -> None:
        reader = self._stderr_reader
        if reader is not None and not reader.done():
            await self.stderr_drained()
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        process = self._process
        transport = getattr(process, "_transport", None)
        if isinstance(transport, asyncio.SubprocessTransport) and not transport.is_closing():
            # Closed while the loop runs; left to the garbage collector, the pipes would be closed
            # after the loop is gone.
            transport.close()
            await asyncio.sleep(0)

    def _discard_launch(self) -> None:
        if self._launch is not None:
            # It never started (or has read it): nothing else removes its options file.
            self._launch.discard()
