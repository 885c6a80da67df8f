"""One run of a task: its worktree, its turn (through the session's queue), and what follows.

A task's run is a chat turn with the task's own CLI flags: the permission mode or
``--dangerously-skip-permissions``, and a PreToolUse callback on its live session (the file
guard, over :mod:`drivers.claims`) that refuses edits of files another unmerged task holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.utils import timezone

from chat.live import notify
from chat.models import Event, Session, Turn
from chat.services import agents, turns
from chat.services.execution import FileRefusal, TurnOptions
from drivers import claims, claude, git
from runtime import Engine

from .. import live
from ..models import Task, TaskEvent, TaskStopReason
from . import checks
from .addressed import check_addressed
from .common import touched, usage
from .conflicts import pause_for_conflict, unblock_later
from .creation import new_session
from .feedback import push_answer_later
from .places import WORKTREES_DIR, repo_of, store_for, worktree_of
from .state import TaskFields, TransitionRefused, queue, stop_asked, transition, update

log = logging.getLogger(__name__)


@sync_to_async
def _session_of(task_id: int) -> Session:
    """The task's Claude session, made before its first run (its project's setup runs in its sandbox)."""
    task = Task.objects.select_related("session").get(pk=task_id)
    if task.session is None:
        task.session = new_session(task)
        task.save(update_fields=["session"])
    return task.session


@sync_to_async
def _new_turn(task_id: int) -> tuple[Task, Turn, Session]:
    task = Task.objects.select_related("session").get(pk=task_id)
    session = task.session
    assert session is not None  # made by _session_of
    turn = Turn.objects.create(
        session=session, author=task.created_by, prompt=task.next_prompt or task.prompt, origin=Turn.Origin.TASK
    )
    # Its state (running) was set when the scheduler took it (TaskEvent.START): not written here.
    task.error = ""
    task.started_at = task.started_at or timezone.now()
    task.finished_at = None
    task.save(update_fields=["error", "started_at", "finished_at"])
    return task, turn, session


async def _prepare_worktree(task: Task) -> bool:
    """The task's worktree, made on its first run (or again, on its branch, if its folder went);
    True if it was made now."""
    repo, worktree = repo_of(task), worktree_of(task)
    if task.worktree_exists and git.is_folder(worktree.git_dir):
        return False
    await git.ignore_folder(repo, WORKTREES_DIR)
    await git.worktree_prune(repo)  # a record of a folder someone removed would block the name
    path = Path(task.worktree_path)
    if os.path.lexists(path):
        raise git.GitError(
            ["worktree", "add"],
            1,
            "",
            f"{path} exists but git has no record of it as the worktree of {task.branch}. Move it away (its files "
            "stay where you move it) and press Resume, or Discard the task.",
        )
    # The branch may have outlived its worktree (someone removed the folder): its commits are kept.
    kept = await git.branch_exists(repo, task.branch)
    made = await git.worktree_add(repo, path, task.branch, None if kept else task.base_branch)
    if made.git_dir != worktree.git_dir:
        # Another worktree already has the name git would give this one's record.
        await git.worktree_remove(repo, path)
        raise git.GitError(
            ["worktree", "add"],
            1,
            "",
            f"git keeps this worktree's record as {made.git_dir}, not {worktree.git_dir}: another worktree of "
            f"{task.repo_path} is named {path.name}. Remove that one (`git worktree remove`), then press Resume.",
        )
    return True


def _options(task: Task, on_event: Callable[[claude.Event], Awaitable[None]]) -> TurnOptions:
    store = store_for(task)

    async def claims_guard(tool: str, tool_input: dict[str, Any]) -> FileRefusal | None:
        """The task's PreToolUse hook: an edit of a file another unmerged task holds is refused."""
        refusal = await sync_to_async(claims.check_edit)(
            tool_input, cwd=task.worktree_path, store=store, task=task.pk, root=Path(task.worktree_path)
        )
        return None if refusal is None else FileRefusal(reason=refusal.reason, shown=refusal.shown)

    return TurnOptions(
        skip_permissions=task.skip_permissions,
        permission_mode=None if task.skip_permissions else settings.CLAUDE_TASK_PERMISSION_MODE,
        allowed_tools=() if task.skip_permissions else tuple(settings.CLAUDE_TASK_ALLOWED_TOOLS),
        env={"CLAUDE_TASK_ID": str(task.pk)},
        file_guard=claims_guard,
        keep_warm=False,
        on_event=on_event,
        on_prompt=lambda: live.task_changed(task.pk),
        timeout=settings.CLAUDE_TASK_TIMEOUT,
    )


class FilesWatch:
    """The files a running task changed, checked after each tool result off the event pump: git
    runs in a job of its own, at most one check at a time per task, and results that come during
    a check ask for one more after it (the last one wins), so a turn's events never wait for git."""

    def __init__(self, task: Task) -> None:
        self.task = task
        self.job: asyncio.Task[None] | None = None
        self.again = False

    def poke(self) -> None:
        if self.job is not None and not self.job.done():
            self.again = True
            return
        self.job = asyncio.create_task(self._check(), name=f"task-files-{self.task.pk}")

    async def _check(self) -> None:
        while True:
            self.again = False
            try:
                files = await touched(self.task)
            except Exception:
                log.exception("task %s: could not list the files it changed", self.task.pk)
                files = self.task.files_changed
            if files != self.task.files_changed:
                self.task.files_changed = files
                await update(task_id=self.task.pk, files_changed=files)
            if not self.again:
                return

    async def close(self) -> None:
        """Wait for a check under way (none follows): the run's end then writes the last word."""
        self.again = False
        if self.job is not None and not self.job.done():
            with contextlib.suppress(Exception):
                await asyncio.shield(self.job)


async def run_task(*, engine: Engine, task_id: int) -> None:
    """One run of a task (already marked running by the scheduler), from worktree to outcome. Its
    turn runs within it (with its callbacks), through the engine's queue of its session."""
    watch: FilesWatch | None = None
    try:
        task = await Task.objects.aget(pk=task_id)
        made = await _prepare_worktree(task)
        setup = await checks.run_setup(task=task, session=await _session_of(task_id), engine=engine, new_worktree=made)
        if setup is not None and not setup.passed:
            await transition(
                task_id=task_id,
                event=TaskEvent.FAIL,
                why=f"its setup command {setup.result}",
                fields=TaskFields(finished_at=timezone.now(), error=checks.setup_failed(setup)),
            )
            return
        task, turn, session = await _new_turn(task_id)
        await notify.turn_added(turn, session)
        await live.task_changed(task_id)
        watch = FilesWatch(task)
        files_watch = watch

        async def on_event(event: claude.Event) -> None:
            # A refused edit does not stop the run: the agent reads why and ends its turn; the task
            # is then paused as conflicting (see after_run).
            if isinstance(event, claude.ToolResult):
                files_watch.poke()

        await turns.queue_turn(engine=engine, turn=turn, owner_id=task.created_by_id, options=_options(task, on_event))
        try:
            await engine.wait_ended(turn=turn.pk)
        except asyncio.CancelledError:
            if engine.task_stop_reason(task=task_id):
                # Paused, terminated or in conflict: end the turn (it is kept as stopped) before what follows.
                await engine.stop(session=str(session.pk))
                await asyncio.shield(engine.wait_ended(turn=turn.pk))
            raise
        await watch.close()
        turn = await Turn.objects.aget(pk=turn.pk)
        await after_run(task_id, turn, _stop_reason(engine, task_id), engine=engine)
    except asyncio.CancelledError:
        if watch is not None:
            await asyncio.shield(watch.close())
        reason = _stop_reason(engine, task_id)
        if reason:
            await after_run(task_id, None, reason, engine=engine)
            return
        await asyncio.shield(_mark_interrupted(task_id))
        raise
    except Exception as exc:
        log.exception("task %s failed", task_id)
        detail = str(exc) if isinstance(exc, git.GitError | agents.SandboxUnavailable) else type(exc).__name__
        await transition(
            task_id=task_id,
            event=TaskEvent.FAIL,
            why=f"the server failed while running it ({detail})",
            fields=TaskFields(
                finished_at=timezone.now(),
                error=f"The server failed while running this task ({detail}). Press Resume to try again.",
            ),
        )


def _stop_reason(engine: Engine, task_id: int) -> TaskStopReason | None:
    reason = engine.task_stop_reason(task=task_id)
    return TaskStopReason(reason) if reason else None


async def _mark_interrupted(task_id: int) -> None:
    await transition(
        task_id=task_id,
        event=TaskEvent.INTERRUPT,
        why="the server stopped during its run",
        fields=TaskFields(
            finished_at=timezone.now(),
            error="The server stopped during this run; the worktree and session are kept. Press Resume to continue.",
        ),
    )


async def after_run(task_id: int, turn: Turn | None, stop_reason: TaskStopReason | None, *, engine: Engine) -> None:
    task = await Task.objects.aget(pk=task_id)
    store = store_for(task)
    blocked = await sync_to_async(claims.take_blocked)(store, task=task_id)
    used = await usage(task)
    now = timezone.now()
    if stop_reason is not None:
        by, why = stop_asked(task_id)
        if stop_reason == TaskStopReason.TERMINATE:
            await git.commit_all(worktree_of(task), f"WIP: {task.title} (terminated)\n\nTask #{task_id}")
            await sync_to_async(claims.release)(store, task=task_id)
        event = TaskEvent.TERMINATE if stop_reason == TaskStopReason.TERMINATE else TaskEvent.PAUSE
        task = await transition(
            task_id=task_id,
            event=event,
            by=by,
            why=why or "its run was stopped",
            fields=TaskFields(finished_at=now, files_changed=await touched(task)) | used,
        )
        if event == TaskEvent.TERMINATE:
            unblock_later(task, engine=engine)
        return
    if blocked:
        # The hook refused an edit: keep what was done so far as a commit and wait for the holder.
        await git.commit_all(
            worktree_of(task), f"WIP: {task.title} (paused: files held by another task)\n\nTask #{task_id}"
        )
        await pause_for_conflict(task, blocked, used, engine=engine)
        return
    if turn is None or turn.status != Turn.Status.DONE:
        error = (turn.error if turn else "") or "The run ended without an answer."
        await transition(
            task_id=task_id,
            event=TaskEvent.FAIL,
            why=error,
            fields=TaskFields(finished_at=now, error=error, files_changed=await touched(task)) | used,
        )
        return
    await git.commit_all(worktree_of(task), f"{task.title}\n\nTask #{task_id} (Claude Code, branch {task.branch})")
    await check_addressed(task=task, turn=turn)
    files = await touched(task)
    conflicts = await sync_to_async(claims.claim)(store, task=task_id, paths=files)
    if conflicts:
        # Changed through a tool the hook cannot see (e.g. a shell command): detected instead of prevented.
        await pause_for_conflict(task, conflicts, used, engine=engine, files_changed=files)
        return
    check = await checks.run_check(task=task, turn=turn, engine=engine)
    after = (
        checks.AfterFailure() if check is None or check.passed else await checks.failed_check(task=task, check=check)
    )
    note = " ".join(filter(None, ["" if files else await _nothing_changed(turn), after.note]))
    task = await transition(
        task_id=task_id,
        event=TaskEvent.COMPLETE,
        why=(f"{len(files)} file(s) changed" if files else "no file changed")
        + (f"; its check {check.result}" if check is not None else ""),
        fields=TaskFields(finished_at=timezone.now(), files_changed=files, error=note) | used,
    )
    # Feedback from its pull request was sent to this run: its commits go to that pull request.
    push_answer_later(task, engine=engine)
    if after.follow_up:
        try:
            await queue(task_id=task_id, prompt=after.follow_up, engine=engine, event=TaskEvent.RESUME, why=after.why)
        except TransitionRefused:
            pass  # a person acted on it first (merged, discarded, sent a follow-up): theirs wins


@sync_to_async
def _nothing_changed(turn: Turn) -> str:
    """What a run that changed no file says on its page: which of its calls were denied, if any."""
    denied = [
        str(event.data.get("tool") or event.name)
        for event in Event.objects.filter(turn=turn, kind=Event.Kind.PERMISSION)
        if event.data.get("status") in ("denied", "timed_out")
    ]
    if not denied:
        return "This run changed no file, so there is nothing to merge. Send a follow-up if there is work to do."
    tools = " and ".join(dict.fromkeys(denied))
    calls = f"call to {tools} was" if len(denied) == 1 else f"calls to {tools} were"
    return (
        f"This run changed no file: its {calls} denied, so there is nothing to merge. Send a follow-up to try "
        "another way, or Discard the task."
    )
