"""Running one saved turn on a node, and recording how it went.

The node (:class:`runtime.NodeRuntime`) does the process work: the session's warm process, the
interrupt on Stop, the grace, the timeout. Here, what the turn asks and yields becomes records: its
events as they stream (:mod:`chat.services.recording`), its prompts (:mod:`chat.services.handler`)
and its outcome, a status with what to say.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from asgiref.sync import sync_to_async
from django.conf import settings

from drivers import claude
from drivers.claude import LiveSpec
from drivers.egress import EgressProxy
from runtime import Done, Failed, NodeRuntime, ShutDown, Stopped, TimedOut, TurnOutcome

from ..live import fragments, notify
from ..models import Event, Session, Turn
from . import agents, attachments, disk, mcp, permissions, slash, streamed, todos
from .explain import explain, unreachable
from .handler import FileGuard, FileRefusal, TurnHandler
from .packing import has_transcript
from .recording import Recorder, Usage

__all__ = ["FileRefusal", "TurnOptions", "execute", "options_for", "spec_of"]

log = logging.getLogger(__name__)

INTERRUPTED = "The server shut down during this turn; what came so far is kept. Send the message again to continue."
TASK_TURN_ALONE = "A task's turn runs only within its task's run. Press Resume on the task's page to run it again."


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
    file_guard: FileGuard | None = None
    on_event: Callable[[claude.Event], Awaitable[None]] | None = None
    # Called when a permission prompt opens and again when it is answered (a task's board shows "needs you").
    on_prompt: Callable[[], Awaitable[None]] | None = None
    timeout: float | None = None  # None: settings.CLAUDE_TURN_TIMEOUT
    # A chat keeps its process warm for the next message; a task's run ends with its process (and
    # everything the agent started in it).
    keep_warm: bool = True


class TaskTurnAlone(Exception):
    """A task's turn to be run without its task's run, which alone knows how (its guard, its flags)."""


def options_for(turn: Turn) -> TurnOptions:
    """How a saved turn runs, from where it came (its origin): all a turn needs to be run anywhere,
    by its id. A task's turn needs its task's run (:class:`TurnOptions` of its own, handed in)."""
    match turn.origin:
        case Turn.Origin.API:
            return TurnOptions(interactive=False)  # nobody is there to answer a prompt
        case Turn.Origin.TASK:
            raise TaskTurnAlone(TASK_TURN_ALONE)
    return TurnOptions()


def spec_of(session: Session, options: TurnOptions, egress: EgressProxy | None, *, servers: mcp.Setup) -> LiveSpec:
    """How a turn of ``session`` starts its process with ``options`` on a node whose egress proxy is
    ``egress`` (the same for a process started ahead of the turn); ``servers``: the MCP servers it
    starts (:func:`.mcp.setup_for`), whose HTTP routes the proxy then serves."""
    if egress is not None:
        egress.mcp_routes = dict(servers.routes)
    resume = session.cli_created or has_transcript(config_dir=session.config_dir, path=session.transcript_path)
    return LiveSpec(
        cli=agents.cli_program(),
        cwd=session.workdir,
        session_id=str(session.id),
        resume=resume,
        # A chat's agent keeps a todo list, as interactive Claude Code does (its panel: chat.services.todos).
        env=agents.environment(
            session=session,
            extra={todos.ENABLE: "1", **options.env} if session.kind == Session.Kind.CHAT else options.env,
        ),
        sandbox=agents.sandbox(session=session, egress=egress),
        permission_mode=options.permission_mode or session.permission_mode or settings.CLAUDE_PERMISSION_MODE or None,
        skip_permissions=options.skip_permissions,
        allowed_tools=options.allowed_tools,
        model=session.model or None,
        resume_at=(session.resume_at or None) if resume else None,
        # A chat's agent may be rewound with its files; a task's changes are kept by its commits.
        file_checkpoints=session.kind == Session.Kind.CHAT,
        rewind_files_to=(session.restore_files_at or None) if resume else None,
        mcp_config=servers.config,
    )


async def execute(*, recorder: Recorder, options: TurnOptions, node: NodeRuntime) -> None:
    """Run one turn (its process slot is held) on ``node`` to its end, and record how it ended: done,
    an error, stopped, timed out or interrupted."""
    turn = recorder.turn
    session = turn.session
    started = time.monotonic()
    handler = TurnHandler(
        recorder=recorder,
        file_slots=node.file_slots,
        interactive=options.interactive,
        file_guard=options.file_guard,
        on_prompt=options.on_prompt,
    )
    timeout = options.timeout or settings.CLAUDE_TURN_TIMEOUT
    try:
        # Saved and shown while the process is taken and given the message, not before: the CLI
        # starts thinking a database write and a render sooner. Every later record waits for it.
        recorder.running_meanwhile()
        servers = await mcp.asetup_for(session)
        outcome = await node.run_turn(
            spec=spec_of(session, options, node.egress, servers=servers),
            prompt=message_of(turn),
            handler=handler,
            on_event=functools.partial(_seen, recorder, handler, options),
            time_limit=timeout,
            keep_warm=options.keep_warm,
            on_process=functools.partial(_remember_process, recorder),
        )
        handler.release_all()
        await asyncio.shield(permissions.close_open(turn_id=turn.pk))
        elapsed = int((time.monotonic() - started) * 1000)
        await asyncio.shield(_recorded(recorder, outcome, elapsed_ms=elapsed, time_limit=timeout, egress=node.egress))
    except asyncio.CancelledError:
        elapsed = int((time.monotonic() - started) * 1000)
        await asyncio.shield(recorder.finish(Turn.Status.INTERRUPTED, duration_ms=elapsed, error=INTERRUPTED))
        raise
    except (agents.SandboxUnavailable, slash.CommandFailed) as exc:
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
        log.exception("turn %s failed", turn.pk)
        await _failed(recorder, full=disk.is_disk_full(exc), error=exc)
    finally:
        handler.release_all()


async def _recorded(
    recorder: Recorder, outcome: TurnOutcome, *, elapsed_ms: int, time_limit: float, egress: EgressProxy | None
) -> None:
    """The turn's end as its record: a status, what to say, what it cost."""
    session = recorder.turn.session
    await _mark_created(session)
    if (session.resume_at or session.restore_files_at) and not isinstance(outcome, ShutDown | Failed):
        await _resumed(session)
    match outcome:
        case Done(result=result, failure=failure, streamed=streamed):
            usage = await sync_to_async(_usage_of)(recorder.turn, result, streamed, elapsed_ms)
            await recorder.finish(
                Turn.Status.ERROR if failure else Turn.Status.DONE,
                error=explain(failure, session=session, egress=egress) if failure else "",
                usage=usage,
            )
        case Stopped(result=result, streamed=streamed):
            # What the stopped turn used (a paused task's tokens): its result's figures, or what streamed.
            usage = await sync_to_async(_usage_of)(recorder.turn, result, streamed, elapsed_ms)
            await recorder.finish(Turn.Status.STOPPED, duration_ms=elapsed_ms, usage=usage)
        case TimedOut(no_connection=no_connection, streamed=streamed):
            if no_connection:
                # Not a long answer: the CLI was still retrying a request that never connected.
                error = unreachable(
                    f"no connection within {time_limit:g} seconds, so the turn was stopped", egress=egress
                )
            else:
                error = (
                    f"No answer within {time_limit:g} seconds, so the turn was stopped; what came so far is kept. "
                    "Ask for less at once, or raise CLAUDE_TURN_TIMEOUT."
                )
            usage = await sync_to_async(_usage_of)(recorder.turn, None, streamed, elapsed_ms)
            await recorder.finish(Turn.Status.TIMEOUT, duration_ms=elapsed_ms, error=error, usage=usage)
        case ShutDown():
            await recorder.finish(Turn.Status.INTERRUPTED, duration_ms=elapsed_ms, error=INTERRUPTED)
        case Failed(failure=failure):
            await recorder.finish(Turn.Status.ERROR, error=explain(failure, session=session, egress=egress))


async def _seen(recorder: Recorder, handler: TurnHandler, options: TurnOptions, event: claude.Event) -> None:
    """Record an event as it comes; then the turn's own callback sees it."""
    if isinstance(event, claude.Sent):
        recorder.sent()
        return
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
        denied = isinstance(event, claude.ToolResult) and event.tool_use_id in handler.denied
        await streamed.record(event, recorder, denied=denied)
    if options.on_event is not None:
        await options.on_event(event)


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


def message_of(turn: Turn) -> claude.Prompt:
    """What the CLI gets of a turn: its text (a command only if the person chose one from the menu),
    the attached files named after it, and the attached images as image content."""
    text = _command_text(turn) if turn.command else as_plain_text(turn.prompt)
    text += attachments.note(turn.attachments)
    images = attachments.image_blocks(session=turn.session, paths=turn.attachments) if turn.attachments else []
    return [{"type": "text", "text": text}, *images] if images else text


def _command_text(turn: Turn) -> str:
    """A chosen command: the CLI's own as the command itself, a project's as the prompt its file holds
    (read now, as the project has it when the turn runs)."""
    parsed = slash.parse(turn.prompt)
    command = slash.built_in(turn.command)
    if parsed is None or parsed[0] != turn.command:
        return as_plain_text(turn.prompt)
    if command is not None and command.runs == slash.Runs.CLI:
        return turn.prompt
    return as_plain_text(slash.project_prompt(turn.session, turn.command, parsed[1]))


def as_plain_text(text: str) -> str:
    """The message as the CLI should read it: plain text, never a command.

    The CLI runs a message that starts with "/" as a slash command (``/clear`` wipes the session's
    memory behind the page's back, ``/model`` switches models). A leading space makes it text;
    the page shows the message as typed."""
    return " " + text if text.startswith("/") else text


def _usage_of(turn: Turn, result: claude.Result | None, streamed: tuple[int, int], elapsed_ms: int) -> Usage | None:
    """The turn's own figures: the CLI's cost is the session's running total, so this turn's is the
    difference from the last total reported before it. An interrupted turn's result reports no
    tokens (or there is no result): its tokens are then what ``streamed``. None: nothing was used."""
    input_tokens, output_tokens = (result.input_tokens, result.output_tokens) if result is not None else (0, 0)
    if not (input_tokens or output_tokens):
        input_tokens, output_tokens = streamed
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


async def _remember_process(recorder: Recorder, pid: int | None) -> None:
    """The process a restart must end if the server dies during this turn: saved while the turn goes
    on (before any of its records)."""
    if pid is not None:
        turn = recorder.turn
        turn.pid, turn.pid_started = pid, claude.process_start_time(pid)
        recorder.meanwhile(_save_process(turn.pk, turn.pid, turn.pid_started))


@sync_to_async
def _save_process(turn_id: int, pid: int, started: int | None) -> None:
    Turn.objects.filter(pk=turn_id).update(pid=pid, pid_started=started)


@sync_to_async
def _resumed(session: Session) -> None:
    """A rewind's point was taken by the process this turn started: later turns resume as usual."""
    Session.objects.filter(pk=session.pk, resume_at=session.resume_at).update(resume_at="")
    Session.objects.filter(pk=session.pk, restore_files_at=session.restore_files_at).update(restore_files_at="")
    session.resume_at = session.restore_files_at = ""


@sync_to_async
def _mark_created(session: Session) -> None:
    """Later turns resume once the CLI has written a transcript for this id."""
    if not session.cli_created and has_transcript(config_dir=session.config_dir, path=session.transcript_path):
        session.cli_created = True
        Session.objects.filter(pk=session.pk).update(cli_created=True)
