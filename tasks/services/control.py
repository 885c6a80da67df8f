"""What people do to a task: pause, resume (or follow up), terminate, merge, discard, open a pull
request (:mod:`.pulls`); and its diff.

Each action first checks the transition table (:data:`tasks.models.TRANSITIONS`, through
:data:`~tasks.models.ACTIONS`), the same one the pages read to show their buttons, and changes
the task's state through :func:`.state.transition` only. Merge, Discard and Terminate run one at a
time per task (:func:`.state.acting`) and leave the tasks that waited for their files to the
background (:func:`.conflicts.unblock_later`).
"""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.utils import timezone

from chat.models import Turn
from chat.services import agents
from drivers import claims, git
from runtime import Engine

from ..models import Action, Task, TaskEvent, TaskStopReason
from .common import TaskRefused, get_task, require_may_act
from .conflicts import resolve, unblock_later
from .places import remove_worktree_and_branch, repo_of, store_for, worktree_of
from .pulls import close_for_discard, open_pull_request
from .state import (
    Person,
    TaskFields,
    TransitionRefused,
    acting,
    queue,
    require,
    stop_run,
    transition,
)


async def pause(*, engine: Engine, task_id: int, by: Person | None = None) -> Task:
    task = await get_task(task_id)
    require(task, Action.PAUSE)
    if task.status in (Task.Status.QUEUED, Task.Status.PENDING):
        try:
            # Not a running task's row: its run ends it (below).
            return await transition(
                task_id=task.pk, event=TaskEvent.PAUSE, by=by, only_from=(Task.Status.QUEUED, Task.Status.PENDING)
            )
        except TransitionRefused:
            task = await get_task(task_id)  # it started meanwhile
    if not await stop_run(engine=engine, task_id=task.pk, reason=TaskStopReason.PAUSE, by=by):
        task = await get_task(task.pk)
        raise TaskRefused(f"Task #{task.pk} is {task.status_text.lower()}, not running: there is nothing to pause.")
    await engine.task_settled(task=task.pk)
    return await get_task(task.pk)


async def resume(*, engine: Engine, task_id: int, message: str | None = None, by: Person | None = None) -> Task:
    """Continue a paused or failed task's session, or give a completed task a follow-up instruction."""
    task = await get_task(task_id)
    message = (message or "").strip()
    if task.status == Task.Status.PAUSED and task.reason == Task.Reason.CONFLICT:
        other = f"task #{task.conflict_with_id}" if task.conflict_with_id else "the other task"
        raise TaskRefused(
            f"Task #{task.pk} waits for {other} to be merged (both change {', '.join(task.conflict_files)}); "
            f"it resumes by itself then. Merge or discard {other} first, or discard this one."
        )
    require(task, Action.RESUME)
    if task.status == Task.Status.PAUSED and task.reason == Task.Reason.ATTENTION:
        return await resolve(engine=engine, task_id=task.pk, message=message, by=by)
    if task.status == Task.Status.COMPLETED and not message:
        raise TaskRefused("Say what to do next: a completed task takes a follow-up instruction.")
    if not task.worktree_exists and not await git.branch_exists(repo_of(task), task.branch):
        raise TaskRefused(f"The worktree and branch of task #{task.pk} are gone; start a new task.")
    # A session whose agent never ran (its project's setup failed first) starts with the task's prompt.
    ran = task.session_id is not None and await Turn.objects.filter(session_id=task.session_id).aexists()
    prompt = message or ("Continue where you left off." if ran else task.prompt)
    why = "a follow-up instruction" if task.status == Task.Status.COMPLETED else ""
    return await queue(task_id=task.pk, prompt=prompt, engine=engine, event=TaskEvent.RESUME, by=by, why=why)


async def terminate(*, engine: Engine, task_id: int, by: Person | None = None) -> Task:
    async with acting(task_id):
        task = await get_task(task_id)
        require(task, Action.TERMINATE)
        if task.status == Task.Status.RUNNING:
            if await stop_run(engine=engine, task_id=task.pk, reason=TaskStopReason.TERMINATE, by=by):
                await engine.task_settled(task=task.pk)
                return await get_task(task.pk)
        if task.worktree_exists:
            await git.commit_all(worktree_of(task), f"WIP: {task.title} (terminated)\n\nTask #{task.pk}")
        await sync_to_async(claims.release)(store_for(task), task=task.pk)
        task = await transition(
            task_id=task.pk,
            event=TaskEvent.TERMINATE,
            by=by,
            why="its work is kept as a commit on its branch",
            fields=TaskFields(finished_at=timezone.now()),
        )
    unblock_later(task, engine=engine)
    return task


async def merge(*, engine: Engine, task_id: int, by: Person | None = None) -> Task:
    """Merge the task's branch into its base (``--no-ff``), then remove its worktree and branch.
    Returns once merged: the tasks that waited for its files are rebased and resumed in the background."""
    async with acting(task_id):
        task = await get_task(task_id)
        require(task, Action.MERGE)
        if task.worktree_exists:
            await git.commit_all(worktree_of(task), f"{task.title} (last changes)\n\nTask #{task.pk}")
        try:
            commit = await git.merge_into(
                repo_of(task), task.base_branch, task.branch, _merge_subject(task) + task.title
            )
        except git.MergeConflict as exc:
            await transition(
                task_id=task.pk,
                event=TaskEvent.CONFLICT,
                by=by,
                why=f"merging into {task.base_branch} conflicts in {', '.join(exc.files)}",
                fields=TaskFields(
                    conflict_files=exc.files,
                    error=(
                        f"{task.base_branch} changed since this task started, and merging conflicts in "
                        f"{', '.join(exc.files)}. Nothing was merged. Press Resume to let the agent resolve it in "
                        "the worktree, or Discard the task."
                    ),
                ),
            )
            raise TaskRefused(
                f"Merging task #{task.pk} conflicts in {', '.join(exc.files)}; nothing was merged."
            ) from exc
        except git.GitError as exc:
            raise TaskRefused(f"git could not merge task #{task.pk}: {exc}") from exc
        await remove_worktree_and_branch(task)
        await sync_to_async(claims.release)(store_for(task), task=task.pk)
        task = await transition(
            task_id=task.pk,
            event=TaskEvent.MERGE,
            by=by,
            why=f"into {task.base_branch}",
            fields=TaskFields(merged_at=timezone.now(), error="", merge_commit=commit),
        )
    unblock_later(task, engine=engine)
    return task


async def discard(*, engine: Engine, task_id: int, by: Person | None = None) -> Task:
    """Remove the task's worktree and branch without merging (its commits are dropped), and close
    its open pull request (the branch pushed for it stays on the remote)."""
    async with acting(task_id):
        task = await get_task(task_id)
        if task.status == Task.Status.RUNNING:
            raise TaskRefused(f"Task #{task.pk} is running; Pause or Terminate it first.")
        require(task, Action.DISCARD)
        pull_request = await close_for_discard(task)
        if task.worktree_exists:
            await git.merge_abort(worktree_of(task))
        await remove_worktree_and_branch(task)
        await sync_to_async(claims.release)(store_for(task), task=task.pk)
        task = await transition(
            task_id=task.pk,
            event=TaskEvent.DISCARD,
            by=by,
            why="the worktree and branch were removed without merging",
            fields=TaskFields(
                finished_at=task.finished_at or timezone.now(),
                error="Discarded: the worktree and branch were removed without merging." + pull_request,
            ),
        )
    unblock_later(task, engine=engine)
    return task


def _merge_subject(task: Task) -> str:
    return f"Merge task #{task.pk}: "


async def diff(*, task_id: int) -> str:
    """The task's changes as a patch: its branch against the base, or once merged its merge commit's."""
    task = await get_task(task_id)
    try:
        return await _diff(task)
    except (git.GitError, agents.SandboxUnavailable) as exc:
        # In a member's own folder the repository is theirs to break (a chat may rewrite .git).
        raise TaskRefused(
            f"git could not show the changes of task #{task.pk} ({exc}). If a chat changed the repository's .git in "
            f"{task.repo_path}, put it right there (or Discard the task)."
        ) from exc


async def _diff(task: Task) -> str:
    if task.status == Task.Status.MERGED:
        # Tasks merged before merge commits were kept are found by the merge's message.
        commit = task.merge_commit or await git.find_merge(repo_of(task), task.base_branch, _merge_subject(task))
        try:
            return await git.merge_diff(repo_of(task), commit) if commit else ""
        except git.GitError:
            return ""  # the commit is gone (history rewritten): the page says so
    repo = repo_of(task)
    if not task.has_worktree or not await git.branch_exists(repo, task.branch):
        return ""
    if task.worktree_exists:
        pending = await git.status(worktree_of(task))
        if pending and task.status != Task.Status.RUNNING:
            text = await git.diff(repo, task.base_branch, task.branch)
            return text + f"\n(and not yet committed: {', '.join(pending)})\n"
    return await git.diff(repo, task.base_branch, task.branch)


async def act(
    *, engine: Engine, user: AbstractBaseUser | AnonymousUser, task: Task, action: Action, message: str | None = None
) -> Task:
    """Do ``action`` to ``task`` for ``user`` (a button, or the API), if they may."""
    await require_may_act(user, task, str(action))
    match action:
        case Action.PAUSE:
            return await pause(engine=engine, task_id=task.pk, by=user)
        case Action.RESUME:
            return await resume(engine=engine, task_id=task.pk, message=message, by=user)
        case Action.TERMINATE:
            return await terminate(engine=engine, task_id=task.pk, by=user)
        case Action.MERGE:
            return await merge(engine=engine, task_id=task.pk, by=user)
        case Action.DISCARD:
            return await discard(engine=engine, task_id=task.pk, by=user)
        case Action.PULL_REQUEST:
            return await open_pull_request(task_id=task.pk)
