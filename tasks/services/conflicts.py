"""Two tasks and one file: pause the second, rebase and resume it once the first is merged or discarded."""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.utils import timezone

from drivers import claims, git
from runtime import Engine

from ..models import Task, TaskEvent
from .common import TaskFields, TaskRefused, get_task, touched
from .places import store_for, worktree_of
from .state import Person, queue, transition, update

CONTINUE_MARKER = "Continue with:"


async def pause_for_conflict(
    task: Task,
    holders: list[claims.Holder],
    used: TaskFields,
    *,
    engine: Engine,
    files_changed: list[str] | None = None,
) -> None:
    """Pause ``task`` (its run ends): files it needs are held by another unmerged task."""
    holder_id = holders[0].task if holders else None
    files = sorted({h.path for h in holders if h.task == holder_id})
    exists = holder_id is not None and await Task.objects.filter(pk=holder_id).aexists()
    await transition(
        task_id=task.pk,
        event=TaskEvent.BLOCK,
        why=f"{', '.join(files)} held by task #{holder_id}",
        fields=TaskFields(
            finished_at=timezone.now(),
            conflict_with_id=holder_id if exists else None,
            conflict_files=files,
            error=(
                f"Paused: {', '.join(files)} {'is' if len(files) == 1 else 'are'} being changed by task "
                f"#{holder_id}, which is not merged yet. This task is rebased and resumed once that one is merged "
                "or discarded."
            ),
            files_changed=files_changed if files_changed is not None else await touched(task),
        )
        | used,
    )
    # The holder may have been merged or discarded meanwhile.
    holder = await Task.objects.filter(pk=holder_id).afirst() if holder_id else None
    if holder is None or holder.status in Task.CLOSED:
        engine.spawn(rebase_and_resume(task.pk, holder, engine=engine), name=f"task-rebase-{task.pk}")


def unblock_later(holder: Task, *, engine: Engine) -> None:
    """Tasks that waited for ``holder`` (merged, discarded or terminated) are rebased onto the new
    base and resumed in the background, tracked by the engine (shutdown waits for it): the request
    that freed the files returns at once, as a rebase runs git for each waiting task."""
    engine.spawn(unblock(holder, engine=engine), name=f"task-unblock-{holder.pk}")


async def unblock(holder: Task, *, engine: Engine) -> None:
    """Tasks that waited for ``holder``: rebase each onto the (new) base and resume it."""
    waiting = [
        t
        async for t in Task.objects.filter(
            conflict_with=holder, status=Task.Status.PAUSED, reason=Task.Reason.CONFLICT
        ).order_by("id")
    ]
    for task in waiting:
        await rebase_and_resume(task.pk, holder, engine=engine)


async def _what_became_of(holder: Task | None, base: str) -> str:
    """What happened to the task that held the files, as the waiting agent is told it."""
    # Read again: callers pass the task as it was before it was merged or discarded.
    holder = await Task.objects.filter(pk=holder.pk).afirst() if holder is not None else None
    if holder is None:
        return "The task that held these files is gone"
    if holder.status == Task.Status.MERGED:
        return f"Task #{holder.pk} ({holder.title}) was merged into {base}"
    how = "terminated" if holder.worktree_exists else "discarded"  # Terminate keeps the worktree, Discard removes it
    return f"Task #{holder.pk} ({holder.title}) was {how} without merging (its changes are not in {base})"


async def rebase_and_resume(task_id: int, holder: Task | None, *, engine: Engine) -> None:
    task = await get_task(task_id)
    what = await _what_became_of(holder, task.base_branch)
    await git.commit_all(
        worktree_of(task), f"WIP: {task.title} (before rebase onto {task.base_branch})\n\nTask #{task.pk}"
    )
    files = await git.rebase(worktree_of(task), task.base_branch)
    if files:
        await transition(
            task_id=task.pk,
            event=TaskEvent.CONFLICT,
            why=f"{what}; rebasing onto {task.base_branch} conflicts in {', '.join(files)}",
            fields=TaskFields(
                conflict_files=files,
                error=(
                    f"{what}, and rebasing this task onto {task.base_branch} conflicts in {', '.join(files)}. The "
                    "branch is unchanged (the rebase was aborted). Press Resume to let the agent resolve the "
                    "conflict in its worktree, or Discard the task."
                ),
            ),
        )
        return
    await sync_to_async(claims.claim)(store_for(task), task=task.pk, paths=await touched(task))
    freed = ", ".join(task.conflict_files) or "the files it needed"
    prompt = (
        f"{what}, and this branch was rebased onto {task.base_branch}, so {freed} can be changed now "
        f"(re-read {'it' if len(task.conflict_files) == 1 else 'them'} first: the content may have changed). "
        f"Finish your task.\n\n{CONTINUE_MARKER}\n{task.prompt}"
    )
    await update(task_id=task.pk, announce=False, conflict_with_id=None, conflict_files=[])
    await queue(task_id=task.pk, prompt=prompt, engine=engine, event=TaskEvent.UNBLOCK, why=what)


async def resolve(*, engine: Engine, task_id: int, message: str = "", by: Person | None = None) -> Task:
    """Let the agent resolve a conflict: merge the base into the worktree with conflict markers, resume the session."""
    task = await get_task(task_id)
    if not (task.status == Task.Status.PAUSED and task.reason == Task.Reason.ATTENTION):
        raise TaskRefused(f"Task #{task.pk} has no conflict to resolve.")
    await git.commit_all(worktree_of(task), f"WIP: {task.title} (before resolving)\n\nTask #{task.pk}")
    files = await git.merge_in(worktree_of(task), task.base_branch)
    if files:
        prompt = (
            f"{task.base_branch} changed while you worked. It has been merged into this branch and the merge "
            f"conflicts in: {', '.join(files)}. Resolve the conflict markers in those files so that both sides' "
            "intent is kept, and do not run git commands: the app commits when you are done."
        )
    else:
        prompt = f"{task.base_branch} changed while you worked and was merged into this branch without conflicts. Check that your change still fits."
    if message:
        prompt += f"\n\n{CONTINUE_MARKER}\n{message}"
    await update(task_id=task.pk, announce=False, conflict_files=files, conflict_with_id=None)
    return await queue(
        task_id=task.pk, prompt=prompt, engine=engine, event=TaskEvent.RESUME, by=by, why="to resolve the conflict"
    )
