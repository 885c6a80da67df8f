"""Services for tasks: create, run in a worktree, pause, resume, terminate, merge, discard.

Keyword-only async functions that span the database, git, the CLI and the websocket group.
A task's run is a chat turn (:func:`chat.turns.execute_turn`) with the task's own CLI flags:
the permission mode or ``--dangerously-skip-permissions``, and a PreToolUse hook
(:mod:`chat.tasks.hook`) that refuses edits of files another unmerged task holds.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shlex
import sys
from pathlib import Path

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db.models import Sum
from django.utils import timezone

from .. import cli, fragments, turns
from ..models import Session, Turn
from . import claims, git
from .board import broadcast_task
from .models import Task
from .scheduler import TaskScheduler, TurnHost, get_scheduler

log = logging.getLogger(__name__)

WORKTREES_DIR = ".worktrees"
BRANCH_PREFIX = "auto-claude/"
HOOK_MATCHER = "Write|Edit|MultiEdit|NotebookEdit"
HOOK_PROGRAM = Path(__file__).resolve().parent / "hook.py"
CONTINUE_MARKER = "Continue with:"
PRIORITY_RANGE = (-1000, 1000)
ROOT_HINT = ("The CLI refuses skip-permissions mode (--dangerously-skip-permissions) when the server runs as root. "
             "Run the server as an ordinary user, or, only inside a container or VM that exists for this, set "
             "IS_SANDBOX=1 in the server's environment and restart it. Or resume the task with skip-permissions off.")


class TaskRefused(Exception):
    """A request about a task that cannot be done; the text says why and what to do."""


class TaskNotFound(Exception):
    pass


# ---------------------------------------------------------------------------------------
# Names and places, from the id only


def projects() -> dict[str, Path]:
    """The repositories tasks may run in: CLAUDE_PROJECTS, with "default" = CLAUDE_WORKDIR."""
    named = {k: Path(v) for k, v in getattr(settings, "CLAUDE_PROJECTS", {}).items() if k != "default"}
    return {"default": Path(settings.CLAUDE_WORKDIR), **named}


def worktree_for(repo: str | Path, task_id: int) -> Path:
    return Path(repo) / WORKTREES_DIR / str(int(task_id))


def branch_for(task_id: int) -> str:
    return f"{BRANCH_PREFIX}{int(task_id)}"


def store_for(task: Task) -> Path:
    return claims.store_path(settings.CLAUDE_TASK_STATE_DIR, task.repo_path)


def hook_settings(task: Task) -> str:
    """The ``--settings`` JSON with the PreToolUse hook of this task (no user text in it)."""
    command = " ".join(shlex.quote(part) for part in [
        sys.executable, str(HOOK_PROGRAM), "--store", str(store_for(task)), "--task", str(int(task.pk)),
        "--root", task.worktree_path])
    return json.dumps({"hooks": {"PreToolUse": [{"matcher": HOOK_MATCHER, "hooks": [{"type": "command", "command": command}]}]}})


# ---------------------------------------------------------------------------------------
# Broadcasting


# ---------------------------------------------------------------------------------------
# Creating


def _validate(*, prompt: object, title: object, project: object, priority: object, yolo: object) -> dict:
    errors = {}
    if not isinstance(prompt, str) or not prompt.strip():
        errors["prompt"] = "Say what the task should do."
    elif len(prompt) > settings.CLAUDE_MAX_MESSAGE_CHARS:
        errors["prompt"] = f"The prompt is {len(prompt):,} characters long; the limit is {settings.CLAUDE_MAX_MESSAGE_CHARS:,}."
    if title is not None and not isinstance(title, str):
        errors["title"] = "The title must be text."
    elif isinstance(title, str) and len(title) > 120:
        errors["title"] = "The title is longer than 120 characters."
    names = projects()
    if project is not None and (not isinstance(project, str) or project not in names):
        errors["project"] = f"Unknown project {project!r}; known: {', '.join(sorted(names))}."
    if isinstance(priority, str) and priority.strip().lstrip("-").isdigit():
        priority = int(priority)
    if priority is not None and (isinstance(priority, bool) or not isinstance(priority, int)):
        errors["priority"] = "The priority must be a whole number (higher runs first)."
    elif isinstance(priority, int) and not PRIORITY_RANGE[0] <= priority <= PRIORITY_RANGE[1]:
        errors["priority"] = f"The priority must be between {PRIORITY_RANGE[0]} and {PRIORITY_RANGE[1]}."
    if yolo is not None and not isinstance(yolo, bool):
        errors["yolo"] = "yolo must be true or false."
    if errors:
        raise InvalidTask(errors)
    return {"priority": priority or 0}


class InvalidTask(TaskRefused):
    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = errors
        super().__init__(" ".join(errors.values()))


async def create_task(*, user, prompt: object, title: object = None, project: object = None,
                      priority: object = None, yolo: object = None) -> Task:
    """Check the request and the project's repository, save the task as queued, and schedule it."""
    cleaned = _validate(prompt=prompt, title=title, project=project, priority=priority, yolo=yolo)
    name = project or "default"
    repo = projects()[name]
    if not await git.is_repo(repo):
        raise TaskRefused(f"The project {name!r} at {repo} is not a git repository. Run `git init` there and make a "
                          "first commit, or set CLAUDE_TASK_PROJECTS to point at a repository.")
    repo = Path(await git.toplevel(repo))
    base = await git.current_branch(repo)
    if not base or not await git.branch_exists(repo, base):
        raise TaskRefused(f"The repository {repo} has no commit on a branch yet (or HEAD is detached). "
                          "Commit something on a branch first: tasks branch off it.")
    title_text = (title or "").strip() or turns._title_from(prompt)
    task = await Task.objects.acreate(
        created_by=user, title=title_text[:120], prompt=prompt, project=name, repo_path=str(repo), base_branch=base,
        priority=cleaned["priority"], skip_permissions=bool(yolo), status=Task.Status.QUEUED,
        queued_at=timezone.now(), next_prompt=prompt)
    # Names from the id only.
    task.worktree_path = str(worktree_for(repo, task.pk))
    task.branch = branch_for(task.pk)
    # The session exists from the start (its folder not yet), so a task's page follows its log at once.
    task.session = await sync_to_async(_new_session)(task)
    await task.asave(update_fields=["worktree_path", "branch", "session"])
    await sync_to_async(claims.register)(store_for(task), task=task.pk, title=task.title)
    await broadcast_task(task.pk)
    get_scheduler().kick()
    return task


# ---------------------------------------------------------------------------------------
# Running


def _new_session(task: Task) -> Session:
    """The task's Claude session; its working directory (the worktree) is made by git later."""
    session = Session(owner=task.created_by, title=f"Task #{task.pk}: {task.title}"[:120], workdir=task.worktree_path)
    session.transcript_path = str(cli.transcript_path(settings.CLAUDE_CONFIG_DIR, task.worktree_path, str(session.id)))
    session.save(force_insert=True)
    return session


@sync_to_async
def _new_turn(task_id: int) -> tuple[Task, Turn, str]:
    task = Task.objects.get(pk=task_id)
    session = task.session
    if session is None:
        session = _new_session(task)
        task.session = session
    turn = Turn.objects.create(session=session, author=task.created_by, prompt=task.next_prompt or task.prompt)
    task.status = Task.Status.RUNNING
    task.reason = ""
    task.error = ""
    task.started_at = task.started_at or timezone.now()
    task.finished_at = None
    task.save()
    return task, turn, fragments.turn_appended(turn, [])


async def _prepare_worktree(task: Task) -> None:
    path = Path(task.worktree_path)
    if (path / ".git").exists():
        return
    repo = task.repo_path
    await git.exclude(repo, f"/{WORKTREES_DIR}/")
    if await git.branch_exists(repo, task.branch):
        # The branch outlived its worktree (someone removed the folder): keep its commits.
        await git.run(repo, "worktree", "prune", check=False)
        await git.run(repo, "worktree", "add", "--", str(path), task.branch)
    else:
        await git.worktree_add(repo, path, task.branch, task.base_branch)


async def _touched(task: Task) -> list[str]:
    """Files the task changed: committed on its branch since the base, and not yet committed."""
    if not Path(task.worktree_path).is_dir():
        return list(task.files_changed)
    committed = await git.changed_files(task.worktree_path, task.base_branch, "HEAD")
    pending = await git.status(task.worktree_path)
    return sorted(set(committed) | set(pending))


@sync_to_async
def _save(task_id: int, **fields) -> Task:
    Task.objects.filter(pk=task_id).update(**fields)
    return Task.objects.get(pk=task_id)


@sync_to_async
def _usage(task: Task) -> dict:
    if task.session_id is None:
        return {}
    totals = Turn.objects.filter(session_id=task.session_id).aggregate(
        i=Sum("input_tokens"), o=Sum("output_tokens"), c=Sum("cost_usd"))
    return {"input_tokens": totals["i"] or 0, "output_tokens": totals["o"] or 0, "cost_usd": totals["c"] or 0.0}


async def run_task(*, task_id: int, scheduler: TaskScheduler) -> None:
    """One run of a task (already marked running by the scheduler), from worktree to outcome."""
    task = await Task.objects.aget(pk=task_id)
    store = store_for(task)
    try:
        await _prepare_worktree(task)
        task, turn, html = await _new_turn(task_id)
        await turns.broadcast(session_id=task.session_id, html=html)
        await broadcast_task(task_id)

        async def on_event(event: cli.Event) -> None:
            if isinstance(event, cli.ToolResult):
                if event.is_error and await sync_to_async(claims.peek_blocked)(store, task=task_id):
                    scheduler.stop(task_id, "conflict")
                    return
                files = await _touched(task)
                if files != task.files_changed:
                    task.files_changed = files
                    await _save(task_id, files_changed=files)
                    await broadcast_task(task_id)

        options = turns.TurnOptions(
            skip_permissions=task.skip_permissions,
            permission_mode=None if task.skip_permissions else settings.CLAUDE_TASK_PERMISSION_MODE,
            allowed_tools=() if task.skip_permissions else tuple(settings.CLAUDE_TASK_ALLOWED_TOOLS),
            settings_json=hook_settings(task),
            env={"CLAUDE_TASK_ID": str(task_id)},
            on_event=on_event,
            timeout=settings.CLAUDE_TASK_TIMEOUT,
        )
        await turns.execute_turn(turn_id=turn.pk, runner=TurnHost(scheduler, task_id), options=options)
        turn = await Turn.objects.aget(pk=turn.pk)
        await _after_run(task_id, turn, scheduler.stop_reasons.get(task_id))
    except asyncio.CancelledError:
        reason = scheduler.stop_reasons.get(task_id)
        if reason:
            await _after_run(task_id, None, reason)
            return
        await asyncio.shield(_mark_interrupted(task_id))
        raise
    except Exception as exc:
        log.exception("task %s failed", task_id)
        detail = str(exc) if isinstance(exc, git.GitError) else type(exc).__name__
        await _save(task_id, status=Task.Status.FAILED, finished_at=timezone.now(),
                    error=f"The server failed while running this task ({detail}). Press Resume to try again.")
        await broadcast_task(task_id)


async def _mark_interrupted(task_id: int) -> None:
    await _save(task_id, status=Task.Status.PAUSED, reason=Task.Reason.INTERRUPTED, finished_at=timezone.now(),
                error="The server stopped during this run; the worktree and session are kept. Press Resume to continue.")
    await broadcast_task(task_id)


async def _after_run(task_id: int, turn: Turn | None, stop_reason: str | None) -> None:
    task = await Task.objects.aget(pk=task_id)
    store = store_for(task)
    blocked = await sync_to_async(claims.take_blocked)(store, task=task_id)
    usage = await _usage(task)
    now = timezone.now()
    if stop_reason == "terminate":
        await git.commit_all(task.worktree_path, f"WIP: {task.title} (terminated)\n\nTask #{task_id}")
        await sync_to_async(claims.release)(store, task=task_id)
        await _save(task_id, status=Task.Status.CANCELLED, reason="", finished_at=now,
                    files_changed=await _touched(task), **usage)
        await broadcast_task(task_id)
        await _unblock(task)
        return
    if stop_reason == "user":
        await _save(task_id, status=Task.Status.PAUSED, reason=Task.Reason.USER, finished_at=now,
                    files_changed=await _touched(task), **usage)
        await broadcast_task(task_id)
        return
    if blocked or stop_reason == "conflict":
        # The hook refused an edit: keep what was done so far as a commit and wait for the holder.
        await git.commit_all(task.worktree_path, f"WIP: {task.title} (paused: files held by another task)\n\nTask #{task_id}")
        await _conflicting(task, blocked, usage)
        return
    if turn is None or turn.status != Turn.Status.DONE:
        error = (turn.error if turn else "") or "The run ended without an answer."
        if "root/sudo" in error or "cannot be used with root" in error:
            error = ROOT_HINT
        await _save(task_id, status=Task.Status.FAILED, finished_at=now, error=error,
                    files_changed=await _touched(task), **usage)
        await broadcast_task(task_id)
        return
    await git.commit_all(task.worktree_path, f"{task.title}\n\nTask #{task_id} (Claude Code, branch {task.branch})")
    files = await _touched(task)
    conflicts = await sync_to_async(claims.claim)(store, task=task_id, paths=files)
    if conflicts:
        # Changed through a tool the hook cannot see (e.g. a shell command): detected instead of prevented.
        await _conflicting(task, conflicts, {**usage, "files_changed": files})
        return
    await _save(task_id, status=Task.Status.COMPLETED, reason="", finished_at=now, files_changed=files, **usage)
    await broadcast_task(task_id)


async def _conflicting(task: Task, holders: list[claims.Holder], extra: dict) -> None:
    holder_id = holders[0].task if holders else None
    files = sorted({h.path for h in holders if h.task == holder_id})
    exists = holder_id is not None and await Task.objects.filter(pk=holder_id).aexists()
    fields = {"files_changed": await _touched(task), **extra}
    await _save(task.pk, status=Task.Status.PAUSED, reason=Task.Reason.CONFLICT, finished_at=timezone.now(),
                conflict_with_id=holder_id if exists else None, conflict_files=files,
                error=(f"Paused: {', '.join(files)} {'is' if len(files) == 1 else 'are'} being changed by task #{holder_id}, "
                       "which is not merged yet. This task is rebased and resumed once that one is merged or discarded."),
                **fields)
    await broadcast_task(task.pk)
    # The holder may have been merged or discarded meanwhile.
    holder = await Task.objects.filter(pk=holder_id).afirst() if holder_id else None
    if holder is None or holder.status in Task.CLOSED:
        get_scheduler().spawn(_rebase_and_resume(task.pk, holder), name=f"task-rebase-{task.pk}")


# ---------------------------------------------------------------------------------------
# Control


async def get_task(task_id: object) -> Task:
    try:
        return await Task.objects.select_related("conflict_with").aget(pk=int(task_id))
    except (Task.DoesNotExist, TypeError, ValueError):
        raise TaskNotFound(task_id) from None


async def pause(*, task_id: int) -> Task:
    task = await get_task(task_id)
    if task.status in (Task.Status.QUEUED, Task.Status.PENDING):
        if await Task.objects.filter(pk=task.pk, status=task.status).aupdate(status=Task.Status.PAUSED, reason=Task.Reason.USER):
            await broadcast_task(task.pk)
            return await get_task(task.pk)
        task = await get_task(task_id)
    if task.status != Task.Status.RUNNING:
        raise TaskRefused(f"Task #{task.pk} is {task.get_status_display().lower()}, not running: there is nothing to pause.")
    scheduler = get_scheduler()
    if not scheduler.stop(task.pk, "user"):
        raise TaskRefused(f"Task #{task.pk} is running in another server process; pause it there.")
    await scheduler_settled(scheduler, task.pk)
    return await get_task(task.pk)


async def scheduler_settled(scheduler: TaskScheduler, task_id: int) -> None:
    job = scheduler.running.get(task_id)
    if job is not None:
        await asyncio.gather(job, return_exceptions=True)


async def resume(*, task_id: int, message: object = None) -> Task:
    """Continue a paused or failed task's session, or give a completed task a follow-up instruction."""
    task = await get_task(task_id)
    if message is not None and (not isinstance(message, str) or len(message) > settings.CLAUDE_MAX_MESSAGE_CHARS):
        raise InvalidTask({"message": "The message must be text within the message limit."})
    message = (message or "").strip()
    if task.status == Task.Status.PAUSED and task.reason == Task.Reason.CONFLICT:
        other = f"task #{task.conflict_with_id}" if task.conflict_with_id else "the other task"
        raise TaskRefused(f"Task #{task.pk} waits for {other} to be merged (both change {', '.join(task.conflict_files)}); "
                          f"it resumes by itself then. Merge or discard {other} first, or discard this one.")
    if task.status == Task.Status.PAUSED and task.reason == Task.Reason.ATTENTION:
        return await resolve(task_id=task.pk, message=message)
    if task.status == Task.Status.COMPLETED and not message:
        raise InvalidTask({"message": "Say what to do next: a completed task takes a follow-up instruction."})
    if task.status not in (Task.Status.PAUSED, Task.Status.FAILED, Task.Status.COMPLETED):
        raise TaskRefused(f"Task #{task.pk} is {task.get_status_display().lower()}; only a paused, failed or completed task can be resumed.")
    if not Path(task.worktree_path).is_dir() and not await git.branch_exists(task.repo_path, task.branch):
        raise TaskRefused(f"The worktree and branch of task #{task.pk} are gone; start a new task.")
    prompt = message or ("Continue where you left off." if task.session_id else task.prompt)
    await _queue(task.pk, prompt)
    return await get_task(task.pk)


async def _queue(task_id: int, prompt: str) -> None:
    await _save(task_id, status=Task.Status.QUEUED, reason="", error="", next_prompt=prompt, queued_at=timezone.now())
    await broadcast_task(task_id)
    get_scheduler().kick()


async def terminate(*, task_id: int) -> Task:
    task = await get_task(task_id)
    if task.status == Task.Status.RUNNING:
        scheduler = get_scheduler()
        if scheduler.stop(task.pk, "terminate"):
            await scheduler_settled(scheduler, task.pk)
            return await get_task(task.pk)
    if not task.can_terminate:
        raise TaskRefused(f"Task #{task.pk} is {task.get_status_display().lower()}: there is nothing to terminate.")
    if Path(task.worktree_path).is_dir():
        await git.commit_all(task.worktree_path, f"WIP: {task.title} (terminated)\n\nTask #{task.pk}")
    await sync_to_async(claims.release)(store_for(task), task=task.pk)
    await _save(task.pk, status=Task.Status.CANCELLED, reason="", finished_at=timezone.now())
    await broadcast_task(task.pk)
    await _unblock(task)
    return await get_task(task.pk)


async def merge(*, task_id: int) -> Task:
    """Merge the task's branch into its base (``--no-ff``), then remove its worktree and branch."""
    task = await get_task(task_id)
    if not task.can_merge:
        raise TaskRefused(f"Task #{task.pk} is {task.status_text.lower()}; only a completed task can be merged.")
    if Path(task.worktree_path).is_dir():
        await git.commit_all(task.worktree_path, f"{task.title} (last changes)\n\nTask #{task.pk}")
    try:
        await git.merge_into(task.repo_path, task.base_branch, task.branch, f"Merge task #{task.pk}: {task.title}")
    except git.MergeConflict as exc:
        await _save(task.pk, status=Task.Status.PAUSED, reason=Task.Reason.ATTENTION, conflict_files=exc.files,
                    error=(f"{task.base_branch} changed since this task started, and merging conflicts in "
                           f"{', '.join(exc.files)}. Nothing was merged. Press Resume to let the agent resolve it in the "
                           "worktree, or Discard the task."))
        await broadcast_task(task.pk)
        raise TaskRefused(f"Merging task #{task.pk} conflicts in {', '.join(exc.files)}; nothing was merged.") from exc
    except git.GitError as exc:
        raise TaskRefused(f"git could not merge task #{task.pk}: {exc}") from exc
    await git.worktree_remove(task.repo_path, task.worktree_path)
    await git.branch_delete(task.repo_path, task.branch, force=True)
    await sync_to_async(claims.release)(store_for(task), task=task.pk)
    await _save(task.pk, status=Task.Status.MERGED, reason="", merged_at=timezone.now(), error="")
    await broadcast_task(task.pk)
    await _unblock(task)
    return await get_task(task.pk)


async def discard(*, task_id: int) -> Task:
    """Remove the task's worktree and branch without merging (its commits are dropped)."""
    task = await get_task(task_id)
    if task.status == Task.Status.RUNNING:
        raise TaskRefused(f"Task #{task.pk} is running; Pause or Terminate it first.")
    if task.status == Task.Status.MERGED:
        raise TaskRefused(f"Task #{task.pk} is merged already: there is nothing to discard.")
    if Path(task.worktree_path).is_dir():
        await git.run(task.worktree_path, "merge", "--abort", check=False)
    await git.worktree_remove(task.repo_path, task.worktree_path)
    await git.branch_delete(task.repo_path, task.branch, force=True)
    await sync_to_async(claims.release)(store_for(task), task=task.pk)
    await _save(task.pk, status=Task.Status.CANCELLED, reason="", finished_at=task.finished_at or timezone.now(),
                error="Discarded: the worktree and branch were removed without merging.")
    await broadcast_task(task.pk)
    await _unblock(task)
    return await get_task(task.pk)


async def _unblock(holder: Task) -> None:
    """Tasks that waited for ``holder``: rebase each onto the (new) base and resume it."""
    waiting = [t async for t in Task.objects.filter(conflict_with=holder, status=Task.Status.PAUSED,
                                                     reason=Task.Reason.CONFLICT).order_by("id")]
    for task in waiting:
        await _rebase_and_resume(task.pk, holder)


async def _rebase_and_resume(task_id: int, holder: Task | None) -> None:
    task = await get_task(task_id)
    what = f"Task #{holder.pk} ({holder.title}) was {'merged into' if holder.status == Task.Status.MERGED else 'discarded from'} " \
        f"{task.base_branch}" if holder else "The task that held these files is gone"
    await git.commit_all(task.worktree_path, f"WIP: {task.title} (before rebase onto {task.base_branch})\n\nTask #{task.pk}")
    files = await git.rebase(task.worktree_path, task.base_branch)
    if files:
        await _save(task.pk, status=Task.Status.PAUSED, reason=Task.Reason.ATTENTION, conflict_files=files,
                    error=(f"{what}, and rebasing this task onto it conflicts in {', '.join(files)}. The branch is unchanged "
                           "(the rebase was aborted). Press Resume to let the agent resolve the conflict in its worktree, "
                           "or Discard the task."))
        await broadcast_task(task.pk)
        return
    store = store_for(task)
    await sync_to_async(claims.claim)(store, task=task.pk, paths=await _touched(task))
    freed = ", ".join(task.conflict_files) or "the files it needed"
    prompt = (f"{what}, and this branch was rebased onto it, so {freed} can be changed now "
              f"(re-read {'it' if len(task.conflict_files) == 1 else 'them'} first: the content may have changed). "
              f"Finish your task.\n\n{CONTINUE_MARKER}\n{task.prompt}")
    await _save(task.pk, conflict_with=None, conflict_files=[])
    await _queue(task.pk, prompt)


async def resolve(*, task_id: int, message: str = "") -> Task:
    """Let the agent resolve a conflict: merge the base into the worktree with conflict markers, resume the session."""
    task = await get_task(task_id)
    if not (task.status == Task.Status.PAUSED and task.reason == Task.Reason.ATTENTION):
        raise TaskRefused(f"Task #{task.pk} has no conflict to resolve.")
    await git.commit_all(task.worktree_path, f"WIP: {task.title} (before resolving)\n\nTask #{task.pk}")
    files = await git.merge_in(task.worktree_path, task.base_branch)
    if files:
        prompt = (f"{task.base_branch} changed while you worked. It has been merged into this branch and the merge "
                  f"conflicts in: {', '.join(files)}. Resolve the conflict markers in those files so that both sides' "
                  "intent is kept, and do not run git commands: the app commits when you are done.")
    else:
        prompt = f"{task.base_branch} changed while you worked and was merged into this branch without conflicts. Check that your change still fits."
    if message:
        prompt += f"\n\n{CONTINUE_MARKER}\n{message}"
    await _save(task.pk, conflict_files=files, conflict_with=None)
    await _queue(task.pk, prompt)
    return await get_task(task.pk)


async def diff(*, task_id: int) -> str:
    task = await get_task(task_id)
    if not task.has_worktree or not await git.branch_exists(task.repo_path, task.branch):
        return ""
    if Path(task.worktree_path).is_dir():
        pending = await git.status(task.worktree_path)
        if pending and task.status != Task.Status.RUNNING:
            text = await git.diff(task.repo_path, task.base_branch, task.branch)
            return text + f"\n(and not yet committed: {', '.join(pending)})\n"
    return await git.diff(task.repo_path, task.base_branch, task.branch)


# ---------------------------------------------------------------------------------------
# Restart recovery


def recover_tasks() -> int:
    """After a restart: mark running tasks interrupted, so they can be resumed.

    Their turns and leftover CLI processes are ended by :func:`chat.turns.recover_interrupted`,
    as every chat's are; start-up runs that first."""
    count = 0
    for task in Task.objects.filter(status=Task.Status.RUNNING):
        task.status = Task.Status.PAUSED
        task.reason = Task.Reason.INTERRUPTED
        task.finished_at = timezone.now()
        task.error = "The server restarted during this run; the worktree and session are kept. Press Resume to continue."
        task.save()
        count += 1
    return count


def is_root_without_sandbox() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0 and os.environ.get("IS_SANDBOX") != "1"
