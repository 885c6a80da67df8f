"""Services for chat turns: accept a message, run it through the CLI, record what streams.

Everything that spans the database, the CLI process and the websocket group lives here,
as keyword-only functions. The CLI itself is driven by :mod:`chat.cli`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from . import cli, fragments
from .models import Event, Session, Turn
from .recording import Recorder, broadcast, refresh_session_status
from .runner import Runner, get_runner

log = logging.getLogger(__name__)

TOOL_RESULT_KEEP_CHARS = 20_000
TITLE_CHARS = 60


class TurnRefused(Exception):
    """A message that cannot be accepted; the text says why and what to do."""


# ---------------------------------------------------------------------------------------
# Accepting a message


def _title_from(text: str) -> str:
    first = " ".join(text.split())
    return first if len(first) <= TITLE_CHARS else first[: TITLE_CHARS - 1].rstrip() + "…"


@sync_to_async
def _save_message(session_id: object, user, text: str) -> tuple[Turn, Session, str]:
    with transaction.atomic():
        session = Session.objects.select_for_update().get(pk=session_id)
        if session.is_archived:
            raise TurnRefused("This chat is archived and read-only. Press Restore to continue it.")
        turn = Turn.objects.create(session=session, author=user, prompt=text)
        if not session.title:
            session.title = _title_from(text)
            session.save(update_fields=["title"])
        session = refresh_session_status(session_id)
    html = fragments.turn_appended(turn, []) + fragments.session_state(session)
    return turn, session, html


def validate_message(text: object) -> str:
    if not isinstance(text, str) or not text.strip():
        raise TurnRefused("Type a message first.")
    limit = settings.CLAUDE_MAX_MESSAGE_CHARS
    if len(text) > limit:
        raise TurnRefused(f"The message is {len(text):,} characters long; the limit is {limit:,}. Shorten it or attach less text.")
    return text


async def submit_message(*, session_id: object, user, text: object) -> Turn:
    """Save the message as a queued turn (before any CLI runs), show it, and schedule it."""
    text = validate_message(text)
    turn, _session, html = await _save_message(session_id, user, text)
    await broadcast(session_id=session_id, html=html)
    get_runner().kick(str(session_id))
    return turn


async def stop_turn(*, session_id: object) -> bool:
    """Stop the running turn of a session, if one runs."""
    return get_runner().stop(str(session_id))


async def withdraw_turn(*, turn_id: int, reason: str) -> bool:
    """Take back a turn that has not started: it never runs, and stays in the chat as stopped
    with ``reason``. False if it has started (or ended) meanwhile."""
    runner = get_runner()
    turn = await Turn.objects.aget(pk=turn_id)
    session_id = str(turn.session_id)
    if runner.running_turn(session_id) == turn_id:
        if turn.status != Turn.Status.WAITING:
            return False
        runner.stop(session_id)  # it waits for a free slot: no CLI has started for it
        # The runner has no event for "this turn is over"; the stop takes a few loop rounds.
        while runner.running_turn(session_id) == turn_id:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    html = await _mark_withdrawn(turn_id, reason)
    if html is None:
        return False
    await broadcast(session_id=session_id, html=html)
    return True


@sync_to_async
def _mark_withdrawn(turn_id: int, reason: str) -> str | None:
    with transaction.atomic():
        # started_at is set once a turn runs: such a turn is not ours to take back.
        taken = Turn.objects.filter(pk=turn_id, started_at__isnull=True,
                                    status__in=[Turn.Status.QUEUED, Turn.Status.STOPPED])
        if not taken.update(status=Turn.Status.STOPPED, error=reason, finished_at=timezone.now()):
            return None
        turn = Turn.objects.get(pk=turn_id)
        session = refresh_session_status(turn.session_id)
    return fragments.turn_status(turn) + fragments.session_state(session)


# ---------------------------------------------------------------------------------------
# Running a turn


@sync_to_async
def next_queued_turn_sync(session_id: str) -> int | None:
    return (Turn.objects.filter(session_id=session_id, status=Turn.Status.QUEUED)
            .order_by("created_at", "id").values_list("id", flat=True).first())


async def next_queued_turn(session_id: str) -> int | None:
    return await next_queued_turn_sync(session_id)


@dataclass
class _Outcome:
    result: cli.Result | None = None
    returncode: int | None = None
    stderr: str = ""
    garbage: list[str] = field(default_factory=list)

    @property
    def said(self) -> str:
        result = [self.result.text, *self.result.errors] if self.result else []
        return "\n".join([*self.garbage, self.stderr, *result])

    @property
    def in_use(self) -> bool:
        return "is already in use" in self.said


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
    on_event: Callable[[cli.Event], Awaitable[None]] | None = None
    timeout: float | None = None  # None: settings.CLAUDE_TURN_TIMEOUT


async def _drive(*, turn: Turn, session: Session, resume: bool, recorder: Recorder,
                 options: TurnOptions | None = None) -> _Outcome:
    options = options or TurnOptions()
    argv = cli.build_argv(settings.CLAUDE_CLI, session_id=str(session.id), resume=resume,
                          permission_mode=options.permission_mode or settings.CLAUDE_PERMISSION_MODE or None,
                          skip_permissions=options.skip_permissions, allowed_tools=options.allowed_tools,
                          settings_json=options.settings_json)
    spec = cli.TurnSpec(argv=argv, prompt=turn.prompt, cwd=session.workdir,
                        env={"CLAUDE_CONFIG_DIR": str(settings.CLAUDE_CONFIG_DIR), **options.env})
    outcome = _Outcome()

    def remember_pid(pid: int) -> None:
        turn.pid = pid
        Turn.objects.filter(pk=turn.pk).update(pid=pid)

    events = cli.run_turn(spec, on_spawn=sync_to_async(remember_pid))
    try:
        async for event in events:
            match event:
                case cli.TextDelta(text=text):
                    await recorder.delta(text)
                case cli.Text(text=text):
                    await recorder.text(text)
                case cli.ToolUse(id=tool_id, name=name, input=tool_input):
                    await recorder.add(kind=Event.Kind.TOOL_USE, name=name, data={"id": tool_id, "input": tool_input})
                case cli.ToolResult(tool_use_id=tool_id, content=content, is_error=is_error):
                    kept = content if len(content) <= TOOL_RESULT_KEEP_CHARS else content[:TOOL_RESULT_KEEP_CHARS] + "\n… (cut)"
                    await recorder.add(kind=Event.Kind.TOOL_RESULT, text=kept, is_error=is_error,
                                       data={"tool_use_id": tool_id, "size": len(content)})
                case cli.Notice(subtype="permission_denied", data=data):
                    await recorder.add(kind=Event.Kind.NOTICE, name="permission_denied", is_error=True,
                                       text=str(data.get("message") or data.get("reason") or "A tool call was refused by the permission mode."))
                case cli.Notice(subtype="api_retry", data=data):
                    await recorder.add(kind=Event.Kind.NOTICE, name="api_retry",
                                       text=f"The API answered {data.get('error_status') or data.get('error')}; retrying (attempt {data.get('attempt')}).")
                case cli.Oversized(size=size):
                    await recorder.add(kind=Event.Kind.NOTICE, name="oversized",
                                       text=f"An output line of {size / 1e6:.1f} MB was too large to keep and was skipped.")
                case cli.Result() as result:
                    outcome.result = result
                case cli.Garbage(line=line):
                    outcome.garbage.append(line)
                case cli.Exit(returncode=code, stderr=stderr):
                    outcome.returncode, outcome.stderr = code, stderr
            if options.on_event is not None:
                await options.on_event(event)
    finally:
        await events.aclose()
    return outcome


def _explain(outcome: _Outcome, session: Session) -> str | None:
    """A person-readable error for a failed run, or None if the turn succeeded."""
    said = outcome.said
    if outcome.result is not None and not outcome.result.is_error:
        return None
    if "Not logged in" in said or "Invalid API key" in said or "/login" in said:
        return ("Claude Code is not logged in on the server. Set ANTHROPIC_API_KEY in the server's environment "
                "(or run `claude /login` as the user that runs the server), restart it, and send the message again.")
    if "No conversation found" in said:
        return (f"The Claude Code transcript of this chat is missing (looked for {session.transcript_path}). "
                "The CLI deletes old transcripts by itself, or the chat was archived elsewhere. "
                "Its messages stay readable here; start a new chat to continue.")
    detail = (outcome.result.text if outcome.result and outcome.result.text else "") or said.strip()
    detail = detail.strip()[-2000:] or "no message"
    if outcome.result is not None:
        return f"Claude Code reported an error: {detail}"
    return f"Claude Code exited with code {outcome.returncode} without an answer: {detail}"


async def execute_turn(*, turn_id: int, runner: Runner, options: TurnOptions | None = None) -> None:
    """Run one queued turn to its end: done, error, stopped, timed out or interrupted."""
    turn = await Turn.objects.select_related("session").aget(pk=turn_id)
    if not turn.is_pending:
        return  # withdrawn while it waited in the queue (see withdraw_turn)
    session = turn.session
    recorder = Recorder(turn)
    timeout = (options.timeout if options and options.timeout else None) or settings.CLAUDE_TURN_TIMEOUT
    started = time.monotonic()

    def elapsed_ms() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        async with runner.pool.slot(on_wait=lambda: recorder.status(Turn.Status.WAITING)):
            started = time.monotonic()
            await recorder.status(Turn.Status.RUNNING, started_at=timezone.now())
            async with asyncio.timeout(timeout):
                outcome = await _drive(turn=turn, session=session, resume=session.cli_created, recorder=recorder,
                                       options=options)
                if outcome.in_use and not session.cli_created:
                    # The transcript exists already (an earlier run got that far): continue it.
                    outcome = await _drive(turn=turn, session=session, resume=True, recorder=recorder, options=options)
        await recorder.end_text()
        await _mark_created(session)
        error = _explain(outcome, session)
        result = outcome.result
        stats = {}
        if result is not None:
            stats = {"duration_ms": result.duration_ms or elapsed_ms(), "input_tokens": result.input_tokens,
                     "output_tokens": result.output_tokens, "cost_usd": result.cost_usd}
        await recorder.status(Turn.Status.ERROR if error else Turn.Status.DONE, error=error or "",
                              finished_at=timezone.now(), **stats)
    except TimeoutError:
        await _finish_early(recorder, session, Turn.Status.TIMEOUT, elapsed_ms(),
                            f"No answer within {timeout:g} seconds, so the turn was stopped; what came so far is kept. "
                            "Ask for less at once, or raise CLAUDE_TURN_TIMEOUT.")
    except asyncio.CancelledError:
        if runner.stop_was_requested(turn_id):
            await _finish_early(recorder, session, Turn.Status.STOPPED, elapsed_ms(), "")
            return
        await asyncio.shield(_finish_early(recorder, session, Turn.Status.INTERRUPTED, elapsed_ms(),
                                           "The server shut down during this turn; what came so far is kept. Send the message again to continue."))
        raise
    except cli.CliNotFound as exc:
        await recorder.status(Turn.Status.ERROR, finished_at=timezone.now(), error=(
            f"The Claude Code CLI was not found at {exc}. Run the README's run command to install it into the "
            "project, or set CLAUDE_CLI to the path of `claude`."))
    except cli.WorkdirMissing as exc:
        await recorder.status(Turn.Status.ERROR, finished_at=timezone.now(), error=(
            f"The working directory {exc} of this chat does not exist. Create it or set CLAUDE_WORKDIR."))
    except Exception as exc:
        log.exception("turn %s failed", turn_id)
        await recorder.status(Turn.Status.ERROR, finished_at=timezone.now(),
                              error=f"The server failed while running this turn ({type(exc).__name__}). Send the message again; if it repeats, tell an admin.")


async def _finish_early(recorder: Recorder, session: Session, status: str, elapsed: int, error: str) -> None:
    await recorder.end_text()
    await _mark_created(session)
    await recorder.status(status, error=error, finished_at=timezone.now(), duration_ms=elapsed)


@sync_to_async
def _mark_created(session: Session) -> None:
    """Later turns resume once the CLI has written a transcript for this id."""
    if not session.cli_created and session.transcript_path and Path(session.transcript_path).exists():
        session.cli_created = True
        Session.objects.filter(pk=session.pk).update(cli_created=True)


# ---------------------------------------------------------------------------------------
# Sessions and recovery


def create_session(*, owner, title: str = "", workdir: Path | None = None, session_id: object = None) -> Session:
    """A new chat with its working directory and the transcript path the CLI will use."""
    workdir = Path(workdir or settings.CLAUDE_WORKDIR)
    workdir.mkdir(parents=True, exist_ok=True)
    session = Session(owner=owner, title=title[:120], workdir=str(workdir))
    if session_id is not None:
        session.id = session_id
    session.transcript_path = str(cli.transcript_path(settings.CLAUDE_CONFIG_DIR, workdir, str(session.id)))
    session.save(force_insert=True)
    return session


def recover_interrupted() -> int:
    """After a restart: end leftover CLI process groups, mark unfinished turns interrupted."""
    count = 0
    for turn in Turn.objects.pending():
        if turn.pid and _looks_like_cli(turn.pid):
            cli.kill_group(turn.pid)
        turn.status = Turn.Status.INTERRUPTED
        turn.error = "The server restarted before this turn finished; what came so far is kept. Send the message again to continue."
        turn.finished_at = timezone.now()
        turn.save()
        Event.objects.filter(turn=turn, complete=False).update(complete=True)
        count += 1
    Session.objects.filter(status__in=[Session.Status.RUNNING, Session.Status.QUEUED]).update(status=Session.Status.IDLE)
    return count


def _looks_like_cli(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"claude" in cmdline
