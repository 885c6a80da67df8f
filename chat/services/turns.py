"""Services for chat turns: accept a message, run it through the CLI, record what streams.

A message is saved as a queued turn before anything runs, then submitted to the runtime's
queue of its session (see :mod:`runtime.turns`), which runs it when the earlier turns of that
session are done and a process slot is free. The CLI itself is driven by :mod:`drivers.claude`.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.models import User
from django.db import close_old_connections, transaction

import runtime
from drivers import claude

from ..live import notify
from ..models import Event, Session, Turn
from . import agents
from .recording import Recorder, Usage, refresh_session_status

log = logging.getLogger(__name__)

TOOL_RESULT_KEEP_CHARS = 20_000
TITLE_CHARS = 60


class TurnRefused(Exception):
    """A message that cannot be accepted; the text says why and what to do."""


# ---------------------------------------------------------------------------------------
# Accepting a message


def title_from(text: str) -> str:
    """A chat's (or task's) title from the first words of its first message."""
    first = " ".join(text.split())
    return first if len(first) <= TITLE_CHARS else first[: TITLE_CHARS - 1].rstrip() + "…"


def as_plain_text(text: str) -> str:
    """The message as the CLI should read it: plain text, never a command.

    The CLI runs a message that starts with "/" as a slash command (``/clear`` wipes the session's
    memory behind the page's back, ``/model`` switches models). A leading space makes it text;
    the page shows the message as typed."""
    return " " + text if text.startswith("/") else text


def task_session_refusal(session: Session) -> str:
    # The task is reached through its reverse relation: the chat app does not import the tasks app.
    task = getattr(session, "task", None)
    name = f"task #{task.pk}" if task is not None else "a task"
    return (f"This session belongs to {name}: it takes messages only as the task's follow-ups (two senders at once "
            "would fork its transcript). Send your instruction from the task's page, or start a chat of your own.")


def validate_message(text: object) -> str:
    if not isinstance(text, str) or not text.strip():
        raise TurnRefused("Type a message first.")
    if "\x00" in text:
        raise TurnRefused("The message holds a NUL character, which cannot be stored. Remove it and send again.")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise TurnRefused("The message holds a broken character (a lone surrogate), which cannot be stored. "
                          "Paste the text again and send it.") from None
    limit = settings.CLAUDE_MAX_MESSAGE_CHARS
    if len(text) > limit:
        raise TurnRefused(f"The message is {len(text):,} characters long; the limit is {limit:,}. Shorten it or attach less text.")
    return text


@sync_to_async
def _save_message(session_id: uuid.UUID, user: User | None, text: str) -> tuple[Turn, Session]:
    with transaction.atomic():
        session = Session.objects.select_for_update().get(pk=session_id)
        if session.kind == Session.Kind.TASK:
            raise TurnRefused(task_session_refusal(session))
        if session.is_archived:
            raise TurnRefused("This chat is archived and read-only. Press Restore to continue it.")
        turn = Turn.objects.create(session=session, author=user, prompt=text)
        if not session.title:
            session.title = title_from(text)
            session.save(update_fields=["title"])
        session = refresh_session_status(session_id)
    return turn, session


@dataclass(frozen=True)
class Submitted:
    """A saved turn and its place in the runtime's queue."""

    turn: Turn
    ticket: runtime.Ticket


async def submit_message(*, session_id: uuid.UUID, user: User | None, text: str,
                         options: TurnOptions | None = None) -> Submitted:
    """Save the message as a queued turn (before any CLI runs), queue it, and show it.

    Saving and queueing finish even if the caller goes away meanwhile: a turn that is saved is
    always queued (never left "queued" with nothing to run it)."""
    text = validate_message(text)
    if user is not None:
        waiting = runtime.current().turns.waiting_for(user.pk)
        limit = settings.CLAUDE_MAX_QUEUED_PER_MEMBER
        if waiting >= limit:
            raise TurnRefused(f"You have {waiting} messages waiting to run (the limit is {limit}), so this one was not "
                              "sent. Wait for one to finish, or cancel one, then send it again.")
    return await asyncio.shield(_save_queue_show(session_id, user, text, options))


async def _save_queue_show(session_id: uuid.UUID, user: User | None, text: str, options: TurnOptions | None) -> Submitted:
    turn, session = await _save_message(session_id, user, text)
    submitted = queue_turn(turn=turn, owner_id=session.owner_id, options=options)
    await notify.turn_added(turn, session)
    return submitted


def queue_turn(*, turn: Turn, owner_id: int | None, options: TurnOptions | None = None) -> Submitted:
    """Queue a saved turn behind its session's earlier ones (whoever sent them)."""
    job = ChatTurn(turn_id=turn.pk, options=options or TurnOptions())
    ticket = runtime.current().turns.submit(key=turn.pk, session=str(turn.session_id), owner=owner_id, job=job)
    return Submitted(turn=turn, ticket=ticket)


async def stop_turn(*, session_id: uuid.UUID) -> bool:
    """Stop the running turn of a session, if one runs."""
    return runtime.current().turns.stop(str(session_id))


async def cancel_turn(*, session_id: uuid.UUID, turn_id: int) -> bool:
    """Cancel a turn that waits (queued behind others, or for a process slot): it never runs and
    stays in the chat as cancelled. False if it runs or has ended."""
    ticket = runtime.current().turns.find(str(session_id), turn_id)
    if ticket is None or not isinstance(ticket.job, ChatTurn):
        return False
    ticket.job.withdraw_note = "Cancelled before it ran."
    return await runtime.current().turns.withdraw(ticket)


async def withdraw_turn(*, submitted: Submitted, reason: str) -> bool:
    """Take back a turn that has not started: it never runs, and stays in the chat as stopped
    with ``reason``. False if it has started (or ended) meanwhile."""
    job = submitted.ticket.job
    assert isinstance(job, ChatTurn)
    job.withdraw_note = reason
    return await runtime.current().turns.withdraw(submitted.ticket)


# ---------------------------------------------------------------------------------------
# Running a turn


@dataclass(frozen=True)
class TurnOptions:
    """How to run the CLI for a turn; the defaults are what a chat turn uses.

    Tasks pass their own permission flags, a ``--settings`` hook, extra environment and an
    ``on_event`` callback that sees every CLI event (after it is recorded).
    """

    skip_permissions: bool = False
    permission_mode: str | None = None  # None: settings.CLAUDE_PERMISSION_MODE
    allowed_tools: tuple[str, ...] = ()
    settings_json: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    # More folders the sandbox shows (a task's hook: its interpreter, its claims).
    sandbox_readonly: tuple[Path, ...] = ()
    sandbox_writable: tuple[Path, ...] = ()
    on_event: Callable[[claude.Event], Awaitable[None]] | None = None
    timeout: float | None = None  # None: settings.CLAUDE_TURN_TIMEOUT


class ChatTurn:
    """The runtime's job for one saved turn (see :class:`runtime.TurnJob`)."""

    def __init__(self, *, turn_id: int, options: TurnOptions) -> None:
        self.turn_id = turn_id
        self.options = options
        self.withdraw_note = ""
        self._recorder: Recorder | None = None

    async def _recorder_for(self) -> Recorder:
        if self._recorder is None:
            turn = await Turn.objects.select_related("session").aget(pk=self.turn_id)
            self._recorder = Recorder(turn)
        return self._recorder

    async def waiting(self) -> None:
        await (await self._recorder_for()).waiting()

    async def run(self, ticket: runtime.Ticket) -> None:
        try:
            recorder = await self._recorder_for()
            await execute(recorder=recorder, options=self.options,
                          stopped=lambda: ticket.stop_reason not in (None, runtime.StopReason.SHUTDOWN))
        finally:
            # The runtime's thread keeps no database connection between turns.
            await asyncio.shield(sync_to_async(close_old_connections)())

    async def dropped(self, reason: runtime.StopReason) -> None:
        recorder = await self._recorder_for()
        if reason == runtime.StopReason.SHUTDOWN:
            await recorder.finish(Turn.Status.INTERRUPTED, error=INTERRUPTED_BEFORE_START)
        else:
            await recorder.finish(Turn.Status.STOPPED, error=self.withdraw_note if reason == runtime.StopReason.WITHDRAWN else "")


INTERRUPTED = ("The server shut down during this turn; what came so far is kept. Send the message again to continue.")
INTERRUPTED_BEFORE_START = "The server shut down before this turn ran. Send the message again."


async def _drive(*, turn: Turn, session: Session, resume: bool, recorder: Recorder, options: TurnOptions) -> claude.Outcome:
    argv = claude.build_argv(agents.cli_program(), session_id=str(session.id), resume=resume,
                             permission_mode=options.permission_mode or settings.CLAUDE_PERMISSION_MODE or None,
                             skip_permissions=options.skip_permissions, allowed_tools=options.allowed_tools,
                             settings_json=options.settings_json)
    spec = claude.TurnSpec(argv=argv, prompt=as_plain_text(turn.prompt), cwd=session.workdir,
                           env=agents.environment(session=session, extra=options.env),
                           sandbox=agents.sandbox(session=session, readonly=options.sandbox_readonly,
                                                  writable=options.sandbox_writable))
    outcome = claude.Outcome()

    def remember_pid(pid: int) -> None:
        turn.pid, turn.pid_started = pid, claude.process_start_time(pid)
        Turn.objects.filter(pk=turn.pk).update(pid=turn.pid, pid_started=turn.pid_started)

    events = claude.run_turn(spec, on_spawn=sync_to_async(remember_pid))
    try:
        async for event in events:
            await _record(event, recorder)
            outcome.see(event)
            if options.on_event is not None:
                await options.on_event(event)
    finally:
        await events.aclose()
    return outcome


async def _record(event: claude.Event, recorder: Recorder) -> None:
    match event:
        case claude.TextDelta(text=text):
            await recorder.delta(text)
        case claude.Text(text=text):
            await recorder.text(text)
        case claude.ToolUse(id=tool_id, name=name, input=tool_input):
            await recorder.add(kind=Event.Kind.TOOL_USE, name=name, data={"id": tool_id, "input": tool_input})
        case claude.ToolResult(tool_use_id=tool_id, content=content, is_error=is_error):
            kept = content if len(content) <= TOOL_RESULT_KEEP_CHARS else content[:TOOL_RESULT_KEEP_CHARS] + "\n… (cut)"
            await recorder.add(kind=Event.Kind.TOOL_RESULT, text=kept, is_error=is_error,
                               data={"tool_use_id": tool_id, "size": len(content)})
        case claude.Notice(subtype="permission_denied", data=data):
            await recorder.add(kind=Event.Kind.NOTICE, name="permission_denied", is_error=True,
                               text=str(data.get("message") or data.get("reason") or "A tool call was refused by the permission mode."))
        case claude.Notice(subtype="api_retry", data=data):
            await recorder.add(kind=Event.Kind.NOTICE, name="api_retry",
                               text=f"The API answered {data.get('error_status') or data.get('error')}; retrying (attempt {data.get('attempt')}).")
        case claude.Oversized(size=size):
            await recorder.add(kind=Event.Kind.NOTICE, name="oversized",
                               text=f"An output line of {size / 1e6:.1f} MB was too large to keep and was skipped.")


def explain(failure: claude.Failure, *, session: Session) -> str:
    """What a person reads when a run failed, and what to do about it."""
    match failure.kind:
        case claude.FailureKind.NOT_LOGGED_IN:
            return ("Claude Code is not logged in on the server. Set ANTHROPIC_API_KEY in the server's environment "
                    "(or run `claude /login` as the user that runs the server), restart it, and send the message again.")
        case claude.FailureKind.SESSION_MISSING:
            return (f"The Claude Code transcript of this chat is missing (looked for {session.transcript_path}). "
                    "The CLI deletes old transcripts by itself, or the chat was archived elsewhere. "
                    "Its messages stay readable here; start a new chat to continue.")
        case claude.FailureKind.ROOT_REFUSED:
            return ("The CLI refuses skip-permissions mode (--dangerously-skip-permissions) when the server runs as root. "
                    "Run the server as an ordinary user, or, only inside a container or VM that exists for this, set "
                    "IS_SANDBOX=1 in the server's environment and restart it. Or run it with skip-permissions off.")
    detail = failure.detail or "no message"
    if failure.reported:
        return f"Claude Code reported an error: {detail}"
    return f"Claude Code exited with code {failure.returncode} without an answer: {detail}"


async def execute(*, recorder: Recorder, options: TurnOptions, stopped: Callable[[], bool]) -> None:
    """Run one turn (its process slot is held) to its end: done, error, stopped, timed out or interrupted."""
    turn = recorder.turn
    session = turn.session
    timeout = options.timeout or settings.CLAUDE_TURN_TIMEOUT
    started = time.monotonic()

    def elapsed_ms() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        await recorder.running()
        async with asyncio.timeout(timeout):
            outcome = await _drive(turn=turn, session=session, resume=session.cli_created, recorder=recorder, options=options)
            failure = outcome.failure()
            if failure is not None and failure.kind == claude.FailureKind.SESSION_IN_USE and not session.cli_created:
                # The transcript exists already (an earlier run got that far): continue it.
                outcome = await _drive(turn=turn, session=session, resume=True, recorder=recorder, options=options)
                failure = outcome.failure()
        await _mark_created(session)
        result = outcome.result
        usage = None
        if result is not None:
            usage = Usage(duration_ms=result.duration_ms or elapsed_ms(), input_tokens=result.input_tokens,
                          output_tokens=result.output_tokens, cost_usd=result.cost_usd)
        await recorder.finish(Turn.Status.ERROR if failure else Turn.Status.DONE,
                              error=explain(failure, session=session) if failure else "", usage=usage)
    except TimeoutError:
        await _mark_created(session)
        await recorder.finish(Turn.Status.TIMEOUT, duration_ms=elapsed_ms(), error=(
            f"No answer within {timeout:g} seconds, so the turn was stopped; what came so far is kept. "
            "Ask for less at once, or raise CLAUDE_TURN_TIMEOUT."))
    except asyncio.CancelledError:
        await asyncio.shield(_mark_created(session))
        if stopped():
            await asyncio.shield(recorder.finish(Turn.Status.STOPPED, duration_ms=elapsed_ms()))
            return
        await asyncio.shield(recorder.finish(Turn.Status.INTERRUPTED, duration_ms=elapsed_ms(), error=INTERRUPTED))
        raise
    except claude.CliNotFound as exc:
        await recorder.finish(Turn.Status.ERROR, error=(
            f"The Claude Code CLI was not found at {exc}. Run the README's run command to install it into the "
            "project, or set CLAUDE_CLI to the path of `claude`."))
    except agents.SandboxUnavailable as exc:
        await recorder.finish(Turn.Status.ERROR, error=str(exc))
    except claude.WorkdirMissing as exc:
        await recorder.finish(Turn.Status.ERROR, error=(
            f"The working directory {exc} of this chat does not exist. Create it or set CLAUDE_WORKDIR."))
    except Exception as exc:
        log.exception("turn %s failed", turn.pk)
        await recorder.finish(Turn.Status.ERROR, error=(
            f"The server failed while running this turn ({type(exc).__name__}). Send the message again; if it "
            "repeats, tell an admin."))


@sync_to_async
def _mark_created(session: Session) -> None:
    """Later turns resume once the CLI has written a transcript for this id."""
    if not session.cli_created and session.transcript_path and Path(session.transcript_path).exists():
        session.cli_created = True
        Session.objects.filter(pk=session.pk).update(cli_created=True)
