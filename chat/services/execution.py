"""Running one turn on its session's live CLI process (kept warm between turns by the runtime).

The turn's events are recorded as they stream (:mod:`chat.services.recording`). Stop and the
timeout interrupt the turn through the CLI's control protocol: the process stays warm and the
session keeps what was said; a process that does not stop within the grace period is ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings

import runtime
from drivers import claude
from drivers.claude import LiveSession, LiveSpec, Permission, SessionFailed

from ..live import fragments, notify
from ..models import Event, Session, Turn
from . import agents, attachments, disk, permissions
from .packing import has_transcript
from .recording import Recorder, Usage

log = logging.getLogger(__name__)

TOOL_RESULT_KEEP_CHARS = 20_000
# How long an interrupted turn may take to end by itself before its process is ended.
STOP_GRACE_SECONDS = 5.0
INTERRUPTED = "The server shut down during this turn; what came so far is kept. Send the message again to continue."
TURN_ENDED = "The turn was stopped before this call could run."
API_NO_PROMPTS = (
    "This turn came through the HTTP API, which cannot answer permission prompts, so the call was "
    "refused. Ask in the browser, or let the project's permission mode allow it."
)


@dataclass(frozen=True)
class FileRefusal:
    """A ``file_guard``'s refusal of an edit: ``reason`` goes to the agent (the CLI hands it over as
    "PreToolUse:<tool> hook error: <reason>"); the log shows ``shown`` in place of that tool result."""

    reason: str
    shown: str


@dataclass(frozen=True)
class TurnOptions:
    """How to run the CLI for a turn; the defaults are what a chat turn from the page uses.

    Tasks pass their own permission mode, extra environment, a ``file_guard`` that may refuse a
    file edit (another task holds the file), and an ``on_event`` callback that sees every event
    after it is recorded. API turns are not ``interactive``: nobody is there to answer a prompt.
    """

    skip_permissions: bool = False
    permission_mode: str | None = None  # None: settings.CLAUDE_PERMISSION_MODE
    allowed_tools: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    interactive: bool = True
    file_guard: Callable[[str, dict[str, Any]], Awaitable[FileRefusal | None]] | None = None
    on_event: Callable[[claude.Event], Awaitable[None]] | None = None
    # Called when a permission prompt opens and again when it is answered (a task's board shows "needs you").
    on_prompt: Callable[[], Awaitable[None]] | None = None
    timeout: float | None = None  # None: settings.CLAUDE_TURN_TIMEOUT
    # A chat keeps its process warm for the next message; a task's run ends with its process (and
    # everything the agent started in it).
    keep_warm: bool = True


class _Handler:
    """What the CLI asks while the turn runs: permission prompts, and hooks around file edits."""

    def __init__(self, *, recorder: Recorder, options: TurnOptions) -> None:
        self.recorder = recorder
        self.options = options
        self.file_slots: set[str] = set()
        # Hook callbacks waiting for a file slot: ended with the turn, so that a slot granted after
        # a Stop is never held by a turn that is over (which would block every later edit).
        self._slot_waits: set[asyncio.Task[Any]] = set()
        self._ended = False
        # Edits the file guard refused, by tool call id: what the log shows for their tool result.
        self.refused: dict[str, str] = {}
        # Calls a person's answer (or its timeout) denied: their prompt says so, their result need not.
        self.denied: set[str] = set()

    @property
    def _owner(self) -> int | None:
        return self.recorder.turn.session.owner_id

    async def permission(
        self, tool: str, tool_input: dict[str, Any], suggestions: list[dict[str, Any]], tool_use_id: str | None
    ) -> Permission:
        session = await Session.objects.aget(pk=self.recorder.session_id)
        if tool in session.always_allowed:
            return Permission(allow=True)
        key = tool_use_id or ""
        if not self.options.interactive:
            answer = Permission(allow=False, message=API_NO_PROMPTS)
        else:
            # The file slot its PreToolUse hook took is not held while a person thinks: the call
            # is not running, and other chats' edits should not wait for this answer.
            holding = key in self.file_slots
            self._release(key)
            answer = await self._ask(tool, tool_input, suggestions, key)
            if not answer.allow:
                self.denied.add(key)
            if holding and answer.allow and not await self._take_file_slot(key):
                return Permission(allow=False, message=TURN_ENDED)
        if not answer.allow:
            self._release(key)  # it will not run: no hook after it gives the slot back
        return answer

    async def _ask(
        self, tool: str, tool_input: dict[str, Any], suggestions: list[dict[str, Any]], tool_use_id: str
    ) -> Permission:
        on_prompt = self.options.on_prompt
        opened = permissions.ask(
            recorder=self.recorder,
            tool=tool,
            tool_input=tool_input,
            suggestions=suggestions,
            tool_use_id=tool_use_id,
            on_open=on_prompt,
        )
        try:
            return await opened
        finally:
            if on_prompt is not None:
                await asyncio.shield(on_prompt())

    async def before_file_tool(self, tool: str, tool_input: dict[str, Any], tool_use_id: str | None) -> str | None:
        if self.options.file_guard is not None and (refusal := await self.options.file_guard(tool, tool_input)):
            self.refused[tool_use_id or ""] = refusal.shown
            return refusal.reason
        if not await self._take_file_slot(tool_use_id or ""):
            return TURN_ENDED
        return None

    async def _take_file_slot(self, key: str) -> bool:
        """Wait for a file slot; False (and no slot held) if the turn ended meanwhile."""
        file_ops = runtime.current().file_ops
        waiter = asyncio.current_task()
        if self._ended or waiter is None:
            return False
        self._slot_waits.add(waiter)
        try:
            await file_ops.acquire(owner=self._owner, on_wait=self._waiting_for_file_slot)
        except asyncio.CancelledError:
            if self._ended:
                return False  # cancelled by release_all: the turn is over, the CLI is told no
            raise
        finally:
            self._slot_waits.discard(waiter)
        if self._ended:
            file_ops.release(owner=self._owner)
            return False
        self.file_slots.add(key)
        await self.recorder.resume()
        return True

    async def after_file_tool(self, tool: str, tool_input: dict[str, Any], tool_use_id: str | None) -> None:
        self._release(tool_use_id or "")

    async def _waiting_for_file_slot(self) -> None:
        await self.recorder.add(
            kind=Event.Kind.NOTICE,
            name="file_slot",
            text=(
                f"Waiting for a file slot: {settings.CLAUDE_MAX_FILE_OPERATIONS} file edits are running in other chats "
                "and tasks (CLAUDE_MAX_FILE_OPERATIONS)."
            ),
        )

    def _release(self, tool_use_id: str) -> None:
        if tool_use_id in self.file_slots:
            self.file_slots.discard(tool_use_id)
            runtime.current().file_ops.release(owner=self._owner)

    def release_all(self) -> None:
        """The turn is over: give back its file slots and stop waiting for more."""
        self._ended = True
        for waiter in list(self._slot_waits):
            waiter.cancel()
        for tool_use_id in list(self.file_slots):
            self._release(tool_use_id)


def _spec(session: Session, options: TurnOptions) -> LiveSpec:
    resume = session.cli_created or has_transcript(config_dir=session.config_dir, path=session.transcript_path)
    return LiveSpec(
        cli=agents.cli_program(),
        cwd=session.workdir,
        session_id=str(session.id),
        resume=resume,
        env=agents.environment(session=session, extra=options.env),
        sandbox=agents.sandbox(session=session),
        permission_mode=options.permission_mode or settings.CLAUDE_PERMISSION_MODE or None,
        skip_permissions=options.skip_permissions,
        allowed_tools=options.allowed_tools,
        model=session.model or None,
    )


async def _started(spec: LiveSpec) -> LiveSession:
    live = LiveSession(spec)
    await live.start()
    return live


async def execute(*, recorder: Recorder, options: TurnOptions, stopped: Callable[[], bool]) -> None:
    """Run one turn (its process slot is held) to its end: done, error, stopped, timed out or interrupted."""
    turn = recorder.turn
    session = turn.session
    timeout = options.timeout or settings.CLAUDE_TURN_TIMEOUT
    started = time.monotonic()
    handler = _Handler(recorder=recorder, options=options)
    warm = runtime.current().warm
    key = str(session.id)
    keep = True

    def elapsed_ms() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        await recorder.running()
        spec = _spec(session, options)
        live = await warm.take(key, fingerprint=spec.fingerprint(), start=lambda: _started(spec))
        await _remember_process(turn, live.pid)
        outcome = claude.Outcome()
        pump = asyncio.create_task(_pump(live, message_of(turn), handler, recorder, outcome, options))
        try:
            await asyncio.wait_for(asyncio.shield(pump), timeout)
        except TimeoutError:
            keep = await _interrupt(live, pump)
            await _mark_created(session)
            if outcome.no_connection:
                # Not a long answer: the CLI was still retrying a request that never connected.
                error = unreachable(f"no connection within {timeout:g} seconds, so the turn was stopped")
            else:
                error = (
                    f"No answer within {timeout:g} seconds, so the turn was stopped; what came so far is kept. "
                    "Ask for less at once, or raise CLAUDE_TURN_TIMEOUT."
                )
            usage = await sync_to_async(_usage_of)(turn, outcome, elapsed_ms())
            await recorder.finish(Turn.Status.TIMEOUT, duration_ms=elapsed_ms(), error=error, usage=usage)
            return
        except asyncio.CancelledError:
            if not stopped():
                pump.cancel()
                keep = False
                raise
            keep = await asyncio.shield(_interrupt(live, pump))
            await asyncio.shield(_mark_created(session))
            # What the stopped turn used (a paused task's tokens): its result, or what streamed.
            usage = await asyncio.shield(sync_to_async(_usage_of)(turn, outcome, elapsed_ms()))
            await asyncio.shield(recorder.finish(Turn.Status.STOPPED, duration_ms=elapsed_ms(), usage=usage))
            return
        await _mark_created(session)
        await _finish(recorder, session, outcome, elapsed_ms())
        keep = outcome.result is not None
    except asyncio.CancelledError:
        await asyncio.shield(recorder.finish(Turn.Status.INTERRUPTED, duration_ms=elapsed_ms(), error=INTERRUPTED))
        raise
    except SessionFailed as exc:
        keep = False
        failure = claude.Outcome(returncode=exc.exit.returncode, stderr=exc.exit.stderr).failure()
        assert failure is not None
        await recorder.finish(Turn.Status.ERROR, error=explain(failure, session=session))
    except agents.SandboxUnavailable as exc:
        await recorder.finish(Turn.Status.ERROR, error=str(exc))
    except claude.CliNotFound as exc:
        await recorder.finish(
            Turn.Status.ERROR,
            error=(
                f"The Claude Code CLI was not found at {exc}. Run the README's set-up command (it installs the pinned "
                "CLI), or set CLAUDE_CLI to the path of `claude`."
            ),
        )
    except claude.WorkdirMissing as exc:
        await recorder.finish(
            Turn.Status.ERROR,
            error=(f"The working directory {exc} of this chat does not exist. Create it or set CLAUDE_WORKDIR."),
        )
    except Exception as exc:
        keep = False
        log.exception("turn %s failed", turn.pk)
        await _failed(recorder, full=disk.is_disk_full(exc), error=exc)
    finally:
        handler.release_all()
        await warm.give_back(key, keep=keep and options.keep_warm)


async def _failed(recorder: Recorder, *, full: bool, error: Exception) -> None:
    """End a turn the server failed: with why, or (a full disk that cannot take even that) by telling
    the chat's open pages; a restart then marks the turn interrupted."""
    try:
        await recorder.finish(
            Turn.Status.ERROR,
            error=disk.during_turn()
            if full
            else (
                f"The server failed while running this turn ({type(error).__name__}). Send the message again; if "
                "it repeats, tell an admin."
            ),
        )
    except Exception as again:
        if not full and not disk.is_disk_full(again):
            raise
        await notify.to_chat(recorder.session_id, fragments.flash(disk.during_turn()))


async def _pump(
    live: LiveSession,
    prompt: claude.Prompt,
    handler: _Handler,
    recorder: Recorder,
    outcome: claude.Outcome,
    options: TurnOptions,
) -> None:
    """Record the turn's events as they come, to its result."""
    async for event in live.turn(prompt, handler):
        if isinstance(event, claude.ToolResult) and event.tool_use_id in handler.refused:
            # Not a tool failing: the app refused the edit on purpose. Said in people's words,
            # without the CLI's "PreToolUse:... hook error" wrapping.
            await recorder.add(
                kind=Event.Kind.NOTICE,
                name="file_refused",
                text=handler.refused[event.tool_use_id],
                data={"tool_use_id": event.tool_use_id},
            )
        else:
            await record(
                event, recorder, denied=isinstance(event, claude.ToolResult) and event.tool_use_id in handler.denied
            )
        outcome.see(event)
        if options.on_event is not None:
            await options.on_event(event)


async def _interrupt(live: LiveSession, pump: asyncio.Task[None]) -> bool:
    """Stop the turn through the protocol; True if the process may stay warm."""
    with contextlib.suppress(Exception):
        await live.interrupt()
    done, _ = await asyncio.wait({pump}, timeout=STOP_GRACE_SECONDS)
    if done:
        return True
    pump.cancel()
    await asyncio.gather(pump, return_exceptions=True)
    return False  # it did not stop: the warm pool ends the process and its tree


def message_of(turn: Turn) -> claude.Prompt:
    """What the CLI gets of a turn: its text (never a command), the attached files named after it, and
    the attached images as image content."""
    text = as_plain_text(turn.prompt) + attachments.note(turn.attachments)
    images = attachments.image_blocks(session=turn.session, paths=turn.attachments) if turn.attachments else []
    return [{"type": "text", "text": text}, *images] if images else text


def as_plain_text(text: str) -> str:
    """The message as the CLI should read it: plain text, never a command.

    The CLI runs a message that starts with "/" as a slash command (``/clear`` wipes the session's
    memory behind the page's back, ``/model`` switches models). A leading space makes it text;
    the page shows the message as typed."""
    return " " + text if text.startswith("/") else text


async def record(event: claude.Event, recorder: Recorder, *, denied: bool = False) -> None:
    """Save ``event``; ``denied``: a tool result whose call a person's prompt denied."""
    match event:
        case claude.TextDelta(text=text):
            await recorder.delta(text)
        case claude.Text(text=text):
            await recorder.text(text)
        case claude.ToolUse(id=tool_id, name=name, input=tool_input):
            recorder.tool_names[tool_id] = name
            data: dict[str, Any] = {"id": tool_id, "input": tool_input}
            if tool_id in recorder.prompted:
                data["in_prompt"] = True  # its prompt, shown before it, already shows the call's card
            await recorder.add(kind=Event.Kind.TOOL_USE, name=name, data=data)
        case claude.ToolResult(tool_use_id=tool_id, content=content, is_error=is_error):
            kept = content if len(content) <= TOOL_RESULT_KEEP_CHARS else content[:TOOL_RESULT_KEEP_CHARS] + "\n… (cut)"
            data = {"tool_use_id": tool_id, "size": len(content), "tool": recorder.tool_names.get(tool_id, "")}
            if denied:
                data["denied_in_prompt"] = True  # kept for the record; its prompt says "Denied" once
            await recorder.add(kind=Event.Kind.TOOL_RESULT, text=kept, is_error=is_error, data=data)
        case claude.Notice(subtype="permission_denied", data=data):
            await recorder.add(
                kind=Event.Kind.NOTICE,
                name="permission_denied",
                is_error=True,
                text=str(
                    data.get("message") or data.get("reason") or "A tool call was refused by the permission mode."
                ),
            )
        case claude.Notice(subtype="api_retry", data=data) if data.get("attempt") in (1, None):
            # Said once, when the CLI starts retrying (it may retry ten times): the turn's outcome says the rest.
            status = data.get("error_status")
            what = (
                f"The API at {agents.api_url()} answered {status}"
                if status
                else f"Cannot reach the API at {agents.api_url()}"
            )
            tries = f"up to {data['max_retries']} times" if data.get("max_retries") else "a few times"
            await recorder.add(kind=Event.Kind.NOTICE, name="api_retry", text=f"{what}; Claude Code retries {tries}.")


async def _finish(recorder: Recorder, session: Session, outcome: claude.Outcome, elapsed_ms: int) -> None:
    failure = outcome.failure()
    usage = None
    if outcome.result is not None:
        usage = await sync_to_async(_usage_of)(recorder.turn, outcome, elapsed_ms)
    await recorder.finish(
        Turn.Status.ERROR if failure else Turn.Status.DONE,
        error=explain(failure, session=session) if failure else "",
        usage=usage,
    )


def _usage_of(turn: Turn, outcome: claude.Outcome, elapsed_ms: int) -> Usage | None:
    """The turn's own figures: the CLI's cost is the session's running total, so this turn's is the
    difference from the last total reported before it. An interrupted turn's result reports no
    tokens (or there is no result): its tokens are then what streamed. None: nothing was used."""
    result = outcome.result
    input_tokens, output_tokens = (result.input_tokens, result.output_tokens) if result is not None else (0, 0)
    if not (input_tokens or output_tokens):
        input_tokens, output_tokens = outcome.streamed_tokens
    if result is None:
        if not (input_tokens or output_tokens):
            return None
        return Usage(duration_ms=elapsed_ms, input_tokens=input_tokens, output_tokens=output_tokens, cost_usd=0.0)
    previous = (
        Turn.objects.filter(session_id=turn.session_id, cli_total_cost_usd__isnull=False, id__lt=turn.pk)
        .order_by("-id")
        .values_list("cli_total_cost_usd", flat=True)
        .first()
    ) or 0.0
    return Usage(
        duration_ms=result.duration_ms or elapsed_ms,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cost_usd=max(0.0, result.total_cost_usd - previous),
        total_cost_usd=result.total_cost_usd,
    )


def explain(failure: claude.Failure, *, session: Session) -> str:
    """What a person reads when a run failed, and what to do about it."""
    match failure.kind:
        case claude.FailureKind.NOT_LOGGED_IN:
            return (
                "Claude Code is not logged in on the server. Set ANTHROPIC_API_KEY in the server's environment "
                "(or CLAUDE_CODE_OAUTH_TOKEN from `claude setup-token`), restart it, and send the message again."
            )
        case claude.FailureKind.SESSION_MISSING:
            return (
                f"The Claude Code transcript of this chat is missing (looked for {session.transcript_path}). "
                "The CLI deletes old transcripts by itself, or the chat was archived elsewhere. "
                "Its messages stay readable here; start a new chat to continue."
            )
        case claude.FailureKind.ROOT_REFUSED:
            return (
                "The CLI refuses skip-permissions mode (--dangerously-skip-permissions) when it runs as root. "
                "Turn the sandbox on (CLAUDE_SANDBOX, in which the agent is not root), or run the server as an "
                "ordinary user, or run it with skip-permissions off."
            )
        case claude.FailureKind.API_UNREACHABLE:
            return unreachable(failure.detail)
    detail = failure.detail or "no message"
    if failure.reported:
        return f"Claude Code reported an error: {detail}"
    return f"Claude Code ended without an answer (exit code {failure.returncode}): {detail}"


def unreachable(detail: str) -> str:
    """A turn that could not reach the Messages API: where it tried, and what to do."""
    what = f"Cannot reach the API at {agents.api_url()}" + (f" ({detail})" if detail else "") + "."
    proxy = runtime.current().egress
    if agents.sandboxed() and proxy is not None and proxy.api_failure:
        # The agent's CLI reaches the API through the server's proxy and only sees its connection end.
        what += f" The server itself could not connect to it: {proxy.api_failure}."
    if settings.DEMO_MODE:
        return (
            f"{what} The demo's stand-in for the API is not answering: stop the app and start it again with "
            "scripts/run, then send the message again."
        )
    return (
        f"{what} Check that it is up and that the server reaches it (network, proxy, ANTHROPIC_BASE_URL), then "
        "send the message again."
    )


@sync_to_async
def _remember_process(turn: Turn, pid: int | None) -> None:
    """The process a restart must end if the server dies during this turn."""
    if pid is not None:
        turn.pid, turn.pid_started = pid, claude.process_start_time(pid)
        Turn.objects.filter(pk=turn.pk).update(pid=turn.pid, pid_started=turn.pid_started)


@sync_to_async
def _mark_created(session: Session) -> None:
    """Later turns resume once the CLI has written a transcript for this id."""
    if not session.cli_created and has_transcript(config_dir=session.config_dir, path=session.transcript_path):
        session.cli_created = True
        Session.objects.filter(pk=session.pk).update(cli_created=True)
