"""A live Claude Code session: one CLI process kept warm across turns, driven through the Agent SDK.

No Django imports. The SDK (``claude-agent-sdk``) speaks the CLI's control protocol
(``--input-format stream-json``): turns, interrupts, permission prompts and hooks as Python
callbacks (ours: :mod:`drivers.claude.callbacks`). What it does not do is kept here, around it:

- the process: started by a transport of ours on the SDK's public ``Transport`` interface
  (:mod:`drivers.claude.transport`), with only the caller's environment, inside bubblewrap when
  there is a sandbox;
- one owner task per client, which connects it, serves its turns and disconnects it (the SDK
  requires a client to stay in the task that connected it);
- ending the whole process tree on close, and a bounded close (stdin closed, then signals), also
  while a turn runs; a bounded interrupt;
- how a process that ended mid-turn ended (its exit code and the tail of its stderr);
- typed events (:mod:`drivers.claude.events`) instead of the SDK's messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from claude_agent_sdk import (
    ClaudeSDKClient,
    ClaudeSDKError,
    CLINotFoundError,
    ProcessError,
)
from claude_agent_sdk import types as sdk

from . import proctree
from .callbacks import Callbacks
from .events import Event, Exit, Notice, Result, Sent, Unknown
from .messages import convert
from .spec import (
    CliNotFound,
    LiveSpec,
    Prompt,
    SessionFailed,
    TurnHandler,
    WorkdirMissing,
)
from .transport import CliTransport

log = logging.getLogger(__name__)
# How long the CLI may take to answer a control request (a model or permission mode change).
CONTROL_SECONDS = 10.0


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
        self._transport: CliTransport | None = None
        self._owner: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[None] | None = None
        self._requests: asyncio.Queue[_Turn | None] = asyncio.Queue()
        self._serving: _Turn | None = None
        self._closing = False
        self._stderr: list[str] = []
        # Notices that came between turns (memory the CLI read as it started), for the next turn.
        self._unsaid: list[Event] = []
        self._first_served = False
        # The memory files the CLI said it read as it started (the hook, or its context's list).
        self._memory_said: set[str] = set()
        self.pid: int | None = None
        self._leads_group = False
        self.turns = 0
        # What it runs with now: started with the spec's, changed through the control protocol.
        self.model = spec.model
        self.mode = spec.mode

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        """Start the CLI process and connect (the SDK's handshake); raises CliNotFound, WorkdirMissing
        or an Exit-bearing :class:`SessionFailed`."""
        if not os.path.isdir(self.spec.cwd):
            raise WorkdirMissing(self.spec.cwd)
        if not os.path.isfile(self.spec.cli) or not os.access(self.spec.cli, os.X_OK):
            raise CliNotFound(
                self.spec.cli if not os.path.exists(self.spec.cli) else f"{self.spec.cli} (not an executable file)"
            )
        loop = asyncio.get_running_loop()
        self._ready = loop.create_future()
        self._owner = asyncio.create_task(self._own(), name=f"claude-{self.spec.session_id}")
        await asyncio.shield(self._ready)

    @property
    def alive(self) -> bool:
        """Whether the process can serve a turn. A process that died between turns (killed, out of
        memory) is seen here at once, from /proc, before its parent has reaped it."""
        if self._owner is None or self._owner.done() or self._closing:
            return False
        return self.pid is None or proctree.running(self.pid)

    async def _own(self) -> None:
        """The one task that connects the client, serves its turns and disconnects it."""
        assert self._ready is not None
        # The SDK's callbacks (drivers.claude.callbacks); in skip-permissions mode nothing is asked.
        callbacks = Callbacks(handler=lambda: self._handler, notice=self._notice)
        options = callbacks.options(env=dict(self.spec.env), ask=not self.spec.skip_permissions)
        transport = self._transport = CliTransport(
            self.spec, ask=options.can_use_tool is not None, on_stderr=self._stderr_line
        )
        client = ClaudeSDKClient(options, transport=transport)
        leftovers: asyncio.Task[None] | None = None
        try:
            try:
                await client.connect()
            except CLINotFoundError as exc:
                raise CliNotFound(self.spec.cli) from exc
            except (ClaudeSDKError, OSError) as exc:
                raise SessionFailed(await self._exit(exc)) from exc
            self._client = client
            self.pid = transport.pid
            if self.pid is not None:
                proctree.track(self.pid)
                with contextlib.suppress(OSError):
                    self._leads_group = os.getpgid(self.pid) == self.pid
                if self._leads_group:
                    # If it exits mid-turn, what it left holding its stdout must not keep the turn open.
                    leftovers = asyncio.create_task(proctree.kill_leftovers(self.pid))
            restored = await self._rewind_files(client)
            self._ready.set_result(None)
            while (request := await self._requests.get()) is not None:
                if restored is not None:
                    request.events.put_nowait(restored)  # said with the first turn, which it came before
                    restored = None
                self._serving = request
                while self._unsaid:
                    request.events.put_nowait(self._unsaid.pop(0))
                try:
                    if not await self._serve(client, request):
                        break
                finally:
                    self._serving = None
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
            try:
                await asyncio.shield(self._disconnect(client))
            finally:
                if leftovers is not None:
                    leftovers.cancel()

    async def _rewind_files(self, client: ClaudeSDKClient) -> Notice | None:
        """Put the files back as the spec asks, before any turn; what happened, as a notice."""
        message = self.spec.rewind_files_to
        if not message:
            return None
        try:
            async with asyncio.timeout(CONTROL_SECONDS):
                await client.rewind_files(message)
        except Exception as exc:
            return Notice(subtype="files_not_rewound", data={"message": message, "error": str(exc) or repr(exc)})
        return Notice(subtype="files_rewound", data={"message": message})

    async def _serve(self, client: ClaudeSDKClient, request: _Turn) -> bool:
        """Send the prompt, pass on what comes back until the turn's result; False if the process ended."""
        try:
            # What runs in the sandbox before the turn (the CLI, the sandbox's init) is all that may outlive it.
            before = proctree.snapshot(self.pid)
            # Our own uuid on the user message: its transcript entry's, which a rewind of the files names.
            sent = str(uuid.uuid4())
            # The CLI reads its memory as it starts and after a compaction, and tells the hook of it
            # without waiting: that hook may come after a quick answer's result (see _settle_hooks).
            first = reread = not self._first_served
            self._first_served = True
            await client.query(_one_message(request.prompt, sent))
            request.events.put_nowait(Sent())
            while True:
                try:
                    async for message in client.receive_response():
                        if isinstance(message, sdk.SystemMessage) and message.subtype == "init":
                            # The CLI's stdio MCP servers have been started by now (its init reports
                            # them), and no tool of the turn runs before it: they are the CLI's own,
                            # and live as long as it does.
                            before = before | proctree.snapshot(self.pid)
                        if isinstance(message, sdk.SystemMessage) and message.subtype == "compact_boundary":
                            reread = True
                        if isinstance(message, sdk.ResultMessage) and reread:
                            await self._settle_hooks(client, request, first=first)
                        if isinstance(message, sdk.ResultMessage) and self.pid is not None:
                            # Done, stopped or timed out: what the turn's tools left running (a
                            # detached `setsid cmd &` too) ends before the turn is seen to end.
                            await proctree.end_since(self.pid, before)
                        for event in convert(message):
                            if isinstance(event, Result):
                                event = dataclasses.replace(event, sent=sent)
                            request.events.put_nowait(event)
                        if isinstance(message, sdk.ResultMessage):
                            return True
                    break
                except ClaudeSDKError as exc:
                    data = _unparsed(exc)
                    if data is None:
                        raise
                    # A message of a shape the SDK does not know: kept, never fatal; the stream goes on.
                    request.events.put_nowait(Unknown(type=str(data.get("type", "")), data=data))
            # The stream ended before the turn's result: the process has exited.
            request.events.put_nowait(await self._exit(None))
        except ClaudeSDKError as exc:
            # The process died, a line over the limit, output the SDK cannot read: the session is over.
            request.events.put_nowait(await self._exit(exc))
        finally:
            request.events.put_nowait(None)
        return False

    async def _settle_hooks(self, client: ClaudeSDKClient, request: _Turn, *, first: bool) -> None:
        """Let the hooks the CLI fired without waiting (InstructionsLoaded) reach this turn: a
        control round trip (the CLI answers it after what it wrote before), then the SDK's handler
        tasks get their turn. The CLI may read its memory before it has our hooks at all (as it
        starts, under load): when no hook came by the first turn's end, the memory files its context
        holds are said from that context instead. What still comes later goes with the next turn."""
        usage: dict[str, Any] = {}
        with contextlib.suppress(ClaudeSDKError, OSError, TimeoutError):
            async with asyncio.timeout(5):
                usage = dict(await client.get_context_usage())
        await asyncio.sleep(0.05)
        if not first or self._memory_said:
            return  # the hooks came: they also say why each file was read (an import, say)
        for file in usage.get("memoryFiles") or []:
            path = str(file.get("path") or "") if isinstance(file, dict) else ""
            if path and path not in self._memory_said:
                self._memory_said.add(path)
                data = {"file_path": path, "memory_type": str(file.get("type") or ""), "load_reason": "session_start"}
                request.events.put_nowait(Notice(subtype="instructions_loaded", data=data))

    async def _exit(self, error: BaseException | None) -> Exit:
        """How the process ended or failed: its exit code (1 if it still runs) and the tail of its
        stderr, with the SDK's words unless they only point at stderr."""
        code = getattr(error, "exit_code", None)
        transport = self._transport
        if code is None and transport is not None:
            code = transport.returncode
        if code is not None and transport is not None:
            await transport.stderr_drained()
        said = "" if error is None or type(error) is ProcessError else str(error)
        detail = "\n".join(part for part in (self._stderr_text(), said) if part)
        return Exit(returncode=1 if code is None else code, stderr=detail or "the Claude Code process ended")

    async def _disconnect(self, client: ClaudeSDKClient) -> None:
        """Close stdin (the CLI flushes its transcript and exits); what still runs after the grace is
        sent SIGTERM, after as long again SIGKILL; then the rest of the tree."""
        pid = self.pid
        tree = proctree.descendants(pid) if pid else []
        grace = self.spec.close_grace

        def end(pid: int, sig: int) -> None:
            proctree.end_tree(pid, tree, sig)
            if self._leads_group:
                # What it started in its group, even once it has exited itself.
                proctree.kill_group(pid, sig)

        async def escalate(pid: int) -> None:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                await asyncio.sleep(grace)
                end(pid, sig)

        escalation = asyncio.create_task(escalate(pid)) if pid is not None else None
        try:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(grace * 3):
                    await client.disconnect()
        finally:
            if escalation is not None:
                escalation.cancel()
        if pid is not None:
            end(pid, signal.SIGKILL)
            proctree.untrack(pid)
        if self._transport is not None:
            # Closing it again (the client's disconnect did unless it was stuck) ends at once now,
            # and closes the pipes while the loop runs.
            await self._transport.close()

    async def close(self) -> None:
        """End the process (letting it flush its transcript) and everything it started. A turn still
        running is abandoned (it ends with an Exit) and its process ended the same way."""
        owner = self._owner
        if owner is None or owner.done():
            return
        self._closing = True
        self._requests.put_nowait(None)
        if self._serving is not None:
            owner.cancel()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.spec.close_grace * 4):
                await asyncio.gather(asyncio.shield(owner), return_exceptions=True)
                return
        owner.cancel()
        await asyncio.gather(owner, return_exceptions=True)

    # -- turns ---------------------------------------------------------------------------
    async def turn(self, prompt: Prompt, handler: TurnHandler) -> AsyncIterator[Event]:
        """Run one turn; yields its events, the last a Result (or an Exit if the process ended).

        ``prompt`` is the message's text, or its content blocks (text and base64 images)."""
        if not self.alive:
            raise SessionFailed(Exit(returncode=1, stderr="the Claude Code process is not running"))
        request = _Turn(prompt)
        self._handler = handler
        self.turns += 1
        self._requests.put_nowait(request)
        owner = self._owner
        assert owner is not None
        ended = False  # a Result or an Exit was passed on
        try:
            while True:
                if owner.done() and request.events.empty():
                    break  # the owner ended before serving this turn
                getter = asyncio.ensure_future(request.events.get())
                try:
                    await asyncio.wait({getter, owner}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    getter.cancel()
                if getter.cancelled():
                    continue  # the owner ended: what the turn still said is drained above
                event = getter.result()
                if event is None:
                    break
                ended = ended or isinstance(event, Result | Exit)
                yield event
            if not ended:
                # The session was closed under the turn.
                yield Exit(returncode=1, stderr=self._stderr_text() or "the Claude Code process ended")
        finally:
            self._handler = None

    async def interrupt(self) -> bool:
        """Stop the running turn through the protocol; the process stays for the next one. False if
        the CLI did not acknowledge it within the grace (or is gone): then only closing ends the turn."""
        client = self._client
        if client is None or not self.alive:
            return False
        try:
            async with asyncio.timeout(self.spec.close_grace):
                await client.interrupt()
        except Exception as exc:
            log.warning("claude session %s did not take the interrupt: %r", self.spec.session_id, exc)
            return False
        return True

    async def set_model(self, model: str | None) -> None:
        """Use ``model`` from the next turn on (None: the CLI's default), keeping the process and its
        memory. Raises SessionFailed if the CLI does not take it."""
        await self._control(lambda client: client.set_model(model), f"the model {model}")
        self.model = model

    async def set_permission_mode(self, mode: str) -> None:
        """Run the next turns in permission mode ``mode``, keeping the process and its memory."""
        await self._control(lambda client: client.set_permission_mode(mode), f"the permission mode {mode}")  # type: ignore[arg-type]
        self.mode = mode

    async def _control(self, request: Callable[[ClaudeSDKClient], Awaitable[None]], what: str) -> None:
        client = self._client
        if client is None or not self.alive or self._serving is not None:
            raise SessionFailed(Exit(returncode=1, stderr=f"the Claude Code process cannot change {what} now"))
        try:
            async with asyncio.timeout(CONTROL_SECONDS):
                await request(client)
        except Exception as exc:
            raise SessionFailed(
                Exit(returncode=1, stderr=f"the Claude Code process did not take {what}: {exc}")
            ) from exc

    def _notice(self, notice: Notice) -> None:
        """A notice a hook gave: said in the turn that runs (or, given before any turn was sent, as
        the CLI read memory while it started, in the first one)."""
        if notice.subtype == "instructions_loaded" and notice.data.get("load_reason") == "session_start":
            path = str(notice.data.get("file_path") or "")
            if path in self._memory_said:
                return  # already said from the context's list (_settle_hooks)
            self._memory_said.add(path)
        if self._serving is not None:
            self._serving.events.put_nowait(notice)
        else:
            self._unsaid.append(notice)

    def _stderr_line(self, line: str) -> None:
        self._stderr.append(line)
        del self._stderr[:-50]
        if self._on_stderr is not None:
            self._on_stderr(line)

    def _stderr_text(self) -> str:
        return "\n".join(self._stderr)


@dataclass(eq=False)
class _Turn:
    prompt: Prompt
    # Filled by the owner task, read by turn(); None ends it.
    events: asyncio.Queue[Event | None] = field(default_factory=asyncio.Queue)


async def _one_message(content: Prompt, message_uuid: str) -> AsyncIterator[dict[str, Any]]:
    yield {
        "type": "user",
        "message": {"role": "user", "content": content},
        "parent_tool_use_id": None,
        "uuid": message_uuid,
    }


def _unparsed(error: ClaudeSDKError) -> dict[str, Any] | None:
    """The message the SDK could not read, if ``error`` is its parse error (which it does not export:
    the one of its errors that carries the message's data and is not a process's or a result's)."""
    data = getattr(error, "data", None)
    return data if isinstance(data, dict) and not isinstance(error, ProcessError) else None


def result_of(events: Sequence[Event]) -> Result | None:
    return next((event for event in reversed(events) if isinstance(event, Result)), None)
