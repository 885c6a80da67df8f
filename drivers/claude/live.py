"""A live Claude Code session: one CLI process kept warm across turns, driven through the Agent SDK.

No Django imports. The SDK (``claude-agent-sdk``) speaks the CLI's control protocol
(``--input-format stream-json``): turns, interrupts, permission prompts and hooks as Python
callbacks. What it does not do is kept here, around it:

- the sandbox: its subprocess transport is subclassed so the CLI starts inside bubblewrap,
  with the server's own environment variables unset (only the caller's and the SDK's reach it);
- one owner task per client, which connects it, serves its turns and disconnects it (the SDK
  requires a client to stay in the task that connected it);
- ending the whole process tree on close, and a bounded close (stdin closed, then signals);
- typed events (:mod:`drivers.claude.events`) instead of the SDK's messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import warnings
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from claude_agent_sdk import ClaudeAgentOptions, ClaudeSDKClient, HookMatcher
from claude_agent_sdk import types as sdk
from claude_agent_sdk._errors import ClaudeSDKError, CLIConnectionError, CLINotFoundError
from claude_agent_sdk._internal.transport.subprocess_cli import SubprocessCLITransport

from . import proctree
from .events import Event, Exit, Result
from .messages import convert
from .sandbox import Sandbox, sandbox_args

log = logging.getLogger(__name__)
# A task's allowed tools run without asking, by design: the SDK's warning that they bypass the
# permission callback says what is meant.
warnings.filterwarnings("ignore", category=sdk.CanUseToolShadowedWarning)

# One tool result can be several MB (a file read, an image): the SDK's 1 MiB default would end the session.
MAX_LINE_BYTES = 32 * 1024 * 1024
CLOSE_GRACE_SECONDS = 3.0
FILE_TOOLS = "Write|Edit|MultiEdit|NotebookEdit"


@dataclass(frozen=True)
class Permission:
    """The answer to a permission prompt."""

    allow: bool
    message: str = ""  # read by the agent when the call is denied
    always: bool = False  # the person allowed this tool for the rest of the session


class TurnHandler(Protocol):
    """What a turn does when the CLI asks: permission prompts and hooks around file tools."""

    async def permission(self, tool: str, tool_input: dict[str, Any], suggestions: list[dict[str, Any]],
                         tool_use_id: str | None) -> Permission:
        """Answer a prompt (a tool call the permission mode does not allow by itself)."""

    async def before_file_tool(self, tool: str, tool_input: dict[str, Any], tool_use_id: str | None) -> str | None:
        """Before Write/Edit/MultiEdit/NotebookEdit: None lets it run, a text refuses it (the agent reads it)."""

    async def after_file_tool(self, tool: str, tool_input: dict[str, Any], tool_use_id: str | None) -> None:
        """After such a tool ran (or failed)."""


@dataclass(frozen=True)
class LiveSpec:
    """How to start a session's CLI process. ``env`` is all the CLI gets of the server's environment."""

    cli: str
    cwd: str
    session_id: str
    resume: bool
    env: Mapping[str, str]
    sandbox: Sandbox | None = None
    permission_mode: str | None = None
    skip_permissions: bool = False
    allowed_tools: tuple[str, ...] = ()
    model: str | None = None
    max_line_bytes: int = MAX_LINE_BYTES

    def fingerprint(self) -> tuple[object, ...]:
        """What must be equal for a warm process to serve a turn (else it is restarted)."""
        return (self.cli, self.cwd, self.session_id, self.permission_mode, self.skip_permissions, self.allowed_tools,
                self.model, tuple(sorted(self.env.items())), self.sandbox)


class _SandboxedTransport(SubprocessCLITransport):
    """The SDK's subprocess transport, starting the CLI inside the sandbox."""

    def __init__(self, *, sandbox: Sandbox, cwd: str, keep_env: Sequence[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._sandbox = sandbox
        self._sandbox_cwd = cwd
        self._keep_env = frozenset(keep_env)

    def _build_command(self) -> list[str]:
        command = super()._build_command()
        # The process gets the server's environment plus the SDK's and ours: everything of the
        # server's the caller did not ask for is unset inside the sandbox.
        unset = sorted(name for name in os.environ if name not in self._keep_env)
        return [*sandbox_args(self._sandbox, cwd=self._sandbox_cwd, unset=unset), "--", *command]


class LiveSession:
    """One CLI process of one Claude Code session, kept for many turns.

    :meth:`start` connects it; :meth:`turn` runs one turn and yields its events (ending with a
    :class:`Result` or an :class:`Exit` if the process died); :meth:`interrupt` stops the running
    turn (the process stays); :meth:`close` ends the process and everything it started.
    """

    def __init__(self, spec: LiveSpec, *, on_stderr: Callable[[str], None] | None = None) -> None:
        self.spec = spec
        self._on_stderr = on_stderr
        self._handler: TurnHandler | None = None
        self._client: ClaudeSDKClient | None = None
        self._owner: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[None] | None = None
        self._requests: asyncio.Queue[_Turn | None] = asyncio.Queue()
        self._closing = False
        self._stderr: list[str] = []
        self.pid: int | None = None
        self.turns = 0

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        """Start the CLI process and connect (the SDK's handshake); raises CliNotFound, WorkdirMissing
        or an Exit-bearing :class:`SessionFailed`."""
        if not os.path.isdir(self.spec.cwd):
            raise WorkdirMissing(self.spec.cwd)
        if not os.access(self.spec.cli, os.X_OK):
            raise CliNotFound(self.spec.cli if not os.path.exists(self.spec.cli) else f"{self.spec.cli} (not executable)")
        loop = asyncio.get_running_loop()
        self._ready = loop.create_future()
        self._owner = asyncio.create_task(self._own(), name=f"claude-{self.spec.session_id}")
        await asyncio.shield(self._ready)

    @property
    def alive(self) -> bool:
        return self._owner is not None and not self._owner.done() and not self._closing

    def _options(self) -> ClaudeAgentOptions:
        spec = self.spec
        mode = "bypassPermissions" if spec.skip_permissions else spec.permission_mode
        return ClaudeAgentOptions(
            cli_path=spec.cli,
            cwd=spec.cwd,
            env=dict(spec.env),
            resume=spec.session_id if spec.resume else None,
            session_id=None if spec.resume else spec.session_id,
            permission_mode=mode,  # type: ignore[arg-type]
            allowed_tools=list(spec.allowed_tools),
            model=spec.model,
            system_prompt={"type": "preset", "preset": "claude_code"},
            setting_sources=[],
            include_partial_messages=True,
            max_buffer_size=spec.max_line_bytes,
            stderr=self._stderr_line,
            # In skip-permissions mode nothing is asked.
            can_use_tool=None if spec.skip_permissions else self._can_use_tool,
            hooks={
                "PreToolUse": [HookMatcher(matcher=FILE_TOOLS, hooks=[self._before_file_tool])],
                "PostToolUse": [HookMatcher(matcher=FILE_TOOLS, hooks=[self._after_file_tool])],
                "PostToolUseFailure": [HookMatcher(matcher=FILE_TOOLS, hooks=[self._after_file_tool])],
            },
        )

    def _client_for(self, options: ClaudeAgentOptions) -> ClaudeSDKClient:
        if self.spec.sandbox is None:
            return ClaudeSDKClient(options)
        keep = [*self.spec.env, "PATH"]
        # The SDK routes permission prompts over the control protocol (its "stdio" prompt tool) in
        # the options it gives the transport it makes itself; ours gets the same.
        prepared = dataclasses.replace(options, permission_prompt_tool_name="stdio") if options.can_use_tool else options
        transport = _SandboxedTransport(sandbox=self.spec.sandbox, cwd=self.spec.cwd, keep_env=keep,
                                        prompt=_no_prompt(), options=prepared)
        return ClaudeSDKClient(options, transport=transport)

    async def _own(self) -> None:
        """The one task that connects the client, serves its turns and disconnects it."""
        assert self._ready is not None
        client = self._client_for(self._options())
        try:
            try:
                await client.connect()
            except CLINotFoundError as exc:
                raise CliNotFound(self.spec.cli) from exc
            except (ClaudeSDKError, OSError) as exc:
                raise SessionFailed(Exit(returncode=1, stderr=self._stderr_text() or str(exc))) from exc
            self._client = client
            self.pid = _pid_of(client)
            if self.pid is not None:
                proctree.track(self.pid)
            self._ready.set_result(None)
            while (request := await self._requests.get()) is not None:
                await request.serve(client)
        except BaseException as exc:
            if not self._ready.done():
                self._ready.set_exception(exc if isinstance(exc, Exception) else SessionFailed(Exit(1, "cancelled")))
                if isinstance(exc, Exception):
                    return
            if not isinstance(exc, Exception):
                raise
            log.warning("claude session %s ended: %s", self.spec.session_id, exc)
        finally:
            self._closing = True
            await asyncio.shield(self._disconnect(client))

    async def _disconnect(self, client: ClaudeSDKClient) -> None:
        """Close stdin (the CLI flushes its transcript), then signals; then the rest of the tree."""
        pid = self.pid
        tree = proctree.descendants(pid) if pid else []
        pipes = _asyncio_transport_of(client)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(CLOSE_GRACE_SECONDS * 3):
                await client.disconnect()
        if pid is not None:
            proctree.end_tree(pid, tree)
            proctree.untrack(pid)
        if pipes is not None and not pipes.is_closing():
            # Close the pipes while the loop runs; left to the garbage collector, they would be
            # closed after the loop is gone.
            pipes.close()
            await asyncio.sleep(0)

    async def close(self) -> None:
        """End the process (letting it flush its transcript) and everything it started."""
        if self._owner is None or self._owner.done():
            return
        self._closing = True
        self._requests.put_nowait(None)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CLOSE_GRACE_SECONDS * 4):
                await asyncio.shield(self._owner)
                return
        self._owner.cancel()
        await asyncio.gather(self._owner, return_exceptions=True)

    # -- turns ---------------------------------------------------------------------------
    async def turn(self, prompt: str, handler: TurnHandler) -> AsyncIterator[Event]:
        """Run one turn; yields its events, the last a Result (or an Exit if the process ended)."""
        if not self.alive:
            raise SessionFailed(Exit(returncode=1, stderr="the Claude Code process is not running"))
        request = _Turn(prompt)
        self._handler = handler
        self.turns += 1
        self._requests.put_nowait(request)
        owner = self._owner
        assert owner is not None
        try:
            while True:
                getter = asyncio.ensure_future(request.events.get())
                done, _ = await asyncio.wait({getter, owner}, return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:
                    getter.cancel()
                    # The process ended under the turn: drain what it still said, then say how it ended.
                    while not request.events.empty():
                        event = request.events.get_nowait()
                        if event is not None:
                            yield event
                    yield Exit(returncode=1, stderr=self._stderr_text() or "the Claude Code process ended")
                    return
                event = getter.result()
                if event is None:
                    return
                yield event
        finally:
            self._handler = None

    async def interrupt(self) -> None:
        """Stop the running turn through the protocol; the process stays for the next one."""
        if self._client is not None and self.alive:
            await self._client.interrupt()

    # -- callbacks (called by the SDK while a turn runs) ---------------------------------
    async def _can_use_tool(self, tool: str, tool_input: dict[str, Any],
                            context: sdk.ToolPermissionContext) -> sdk.PermissionResultAllow | sdk.PermissionResultDeny:
        handler = self._handler
        if handler is None:
            return sdk.PermissionResultDeny(message="No turn is running to ask about this tool call.")
        suggestions = [_as_dict(s) for s in (context.suggestions or [])]
        answer = await handler.permission(tool, tool_input, suggestions, context.tool_use_id)
        if not answer.allow:
            return sdk.PermissionResultDeny(message=answer.message or "The person denied this tool call.")
        return sdk.PermissionResultAllow()

    async def _before_file_tool(self, hook_input: sdk.HookInput, tool_use_id: str | None,
                                context: sdk.HookContext) -> sdk.HookJSONOutput:
        handler = self._handler
        if handler is None:
            return {}
        fields = cast(dict[str, Any], hook_input)
        reason = await handler.before_file_tool(str(fields.get("tool_name", "")), dict(fields.get("tool_input") or {}),
                                                tool_use_id)
        if reason is None:
            return {}
        return {"hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecision": "deny",
                                       "permissionDecisionReason": reason}}

    async def _after_file_tool(self, hook_input: sdk.HookInput, tool_use_id: str | None,
                               context: sdk.HookContext) -> sdk.HookJSONOutput:
        handler = self._handler
        if handler is not None:
            fields = cast(dict[str, Any], hook_input)
            await handler.after_file_tool(str(fields.get("tool_name", "")), dict(fields.get("tool_input") or {}),
                                          tool_use_id)
        return {}

    def _stderr_line(self, line: str) -> None:
        self._stderr.append(line)
        del self._stderr[:-50]
        if self._on_stderr is not None:
            self._on_stderr(line)

    def _stderr_text(self) -> str:
        return "\n".join(self._stderr)


class CliNotFound(Exception):
    """The ``claude`` executable is not where the settings say."""


class WorkdirMissing(Exception):
    """The working directory of the session does not exist."""


class SessionFailed(Exception):
    """The CLI process could not start or ended; ``exit`` says how (its stderr included)."""

    def __init__(self, exit: Exit) -> None:
        super().__init__(exit.stderr)
        self.exit = exit


@dataclass(eq=False)
class _Turn:
    prompt: str
    events: asyncio.Queue[Event | None] = field(default_factory=asyncio.Queue)

    async def serve(self, client: ClaudeSDKClient) -> None:
        """In the owner task: send the prompt, pass on what comes back until the turn's result."""
        try:
            await client.query(self.prompt)
            async for message in client.receive_response():
                for event in convert(message):
                    self.events.put_nowait(event)
        except CLIConnectionError as exc:
            self.events.put_nowait(Exit(returncode=1, stderr=str(exc)))
        except ClaudeSDKError as exc:
            # A line over the buffer limit, a message the SDK cannot read: the session is ended.
            self.events.put_nowait(Exit(returncode=1, stderr=str(exc)))
            raise
        finally:
            self.events.put_nowait(None)


def _asyncio_transport_of(client: ClaudeSDKClient) -> asyncio.SubprocessTransport | None:
    """The asyncio transport under the SDK's (anyio) process, if there is one."""
    process = getattr(getattr(client, "_transport", None), "_process", None)
    inner = getattr(process, "_process", None)
    transport = getattr(inner, "_transport", None)
    return transport if isinstance(transport, asyncio.SubprocessTransport) else None


def _pid_of(client: ClaudeSDKClient) -> int | None:
    process = getattr(getattr(client, "_transport", None), "_process", None)
    pid = getattr(process, "pid", None)
    return pid if isinstance(pid, int) else None


def _as_dict(value: Any) -> dict[str, Any]:
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        result = to_dict()
        return result if isinstance(result, dict) else {}
    return dict(value.__dict__) if hasattr(value, "__dict__") else {}


async def _no_prompt() -> AsyncIterator[dict[str, Any]]:
    return
    yield  # an async generator that yields nothing: turns are sent with query()


def result_of(events: Sequence[Event]) -> Result | None:
    return next((event for event in reversed(events) if isinstance(event, Result)), None)
