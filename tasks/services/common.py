"""What the task services share: errors, reading and saving a task, queueing its next run.

The engine (:class:`runtime.Engine`) is handed to each service that starts or stops runs, as ``engine``."""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Sum
from django.utils import timezone

from chat.models import Turn
from drivers import git
from members import roles
from runtime import Engine

from .. import live
from ..models import NEEDS_CHANGES, Action, Task, may_act
from ..selectors import visible_tasks
from .places import worktree_of


class TaskRefused(Exception):
    """A request about a task that cannot be done; the text says why and what to do."""


class NotAllowed(TaskRefused):
    """The person may see the task but not act on it."""


class TaskNotFound(Exception):
    pass


async def require_may_act(user: AbstractBaseUser | AnonymousUser, task: Task, doing: str) -> None:
    """Refuse unless ``user`` may act on ``task`` (:func:`~tasks.models.may_act`), saying why."""
    if await sync_to_async(may_act)(user, task):
        return
    if not await sync_to_async(roles.may_run)(user):
        raise NotAllowed(roles.VIEWER_REFUSAL)
    raise NotAllowed(f"Only the person who created task #{task.pk} (or an admin) can {doing} it.")


_REFUSALS = {
    Action.PAUSE: "there is nothing to pause",
    Action.RESUME: "only a paused, failed or completed task can be resumed",
    Action.TERMINATE: "there is nothing to terminate",
    Action.MERGE: "only a completed task can be merged",
    Action.DISCARD: "there is nothing to discard",
    Action.PULL_REQUEST: "only a completed task can open a pull request",
}


def require(task: Task, action: Action) -> None:
    """Refuse ``action`` unless the transition table allows it in the task's state."""
    if action in NEEDS_CHANGES and task.changed_nothing:
        raise TaskRefused(
            f"Task #{task.pk} changed no file: its branch has nothing to merge or propose. Send a follow-up "
            "instruction, or Discard the task."
        )
    if action not in task.actions:
        raise TaskRefused(f"Task #{task.pk} is {task.status_text.lower()}: {_REFUSALS[action]}.")


async def get_task(task_id: int, *, user: AbstractBaseUser | AnonymousUser | None = None) -> Task:
    """The task (if ``user`` is given: only one they may see)."""
    found = await sync_to_async(visible_tasks)(user) if user is not None else Task.objects.all()
    try:
        return await found.select_related("conflict_with").aget(pk=int(task_id))
    except (Task.DoesNotExist, TypeError, ValueError):
        raise TaskNotFound(task_id) from None


@sync_to_async
def save(task_id: int, **fields: Any) -> Task:
    """Update the named fields of a task (columns of :class:`Task`) and read it back."""
    Task.objects.filter(pk=task_id).update(**fields)
    return Task.objects.get(pk=task_id)


async def changed(task_id: int) -> None:
    """Show the task's new state on its page and the board."""
    await live.task_changed(task_id)


async def touched(task: Task) -> list[str]:
    """Files the task changed: committed on its branch since the base, and not yet committed."""
    if not task.worktree_exists:
        return list(task.files_changed)
    worktree = worktree_of(task)
    committed = await git.changed_files(worktree, task.base_branch, "HEAD")
    pending = await git.status(worktree)
    return sorted(set(committed) | set(pending))


@sync_to_async
def usage(task: Task) -> dict[str, Any]:
    """Tokens and cost of all the task's turns."""
    if task.session_id is None:
        return {}
    totals = Turn.objects.filter(session_id=task.session_id).aggregate(
        i=Sum("input_tokens"), o=Sum("output_tokens"), c=Sum("cost_usd")
    )
    return {"input_tokens": totals["i"] or 0, "output_tokens": totals["o"] or 0, "cost_usd": totals["c"] or 0.0}


async def queue(task_id: int, prompt: str, *, engine: Engine) -> None:
    """Queue the task's next run with ``prompt``; the scheduler starts it when there is room."""
    await save(task_id, status=Task.Status.QUEUED, reason="", error="", next_prompt=prompt, queued_at=timezone.now())
    await changed(task_id)
    engine.kick_tasks()
