"""What the task services share: errors, reading a task, the files it changed, its usage.

The engine (:class:`runtime.Engine`) is handed to each service that starts or stops runs, as ``engine``.
A task's state is written by :mod:`.state` only."""

from __future__ import annotations

from datetime import datetime
from typing import TypedDict

from asgiref.sync import sync_to_async
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Sum

from chat.models import Turn
from drivers import git
from members import roles

from ..models import Task, may_act
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


async def get_task(task_id: int, *, user: AbstractBaseUser | AnonymousUser | None = None) -> Task:
    """The task (if ``user`` is given: only one they may see)."""
    found = await sync_to_async(visible_tasks)(user) if user is not None else Task.objects.all()
    try:
        return await found.select_related("conflict_with").aget(pk=int(task_id))
    except (Task.DoesNotExist, TypeError, ValueError):
        raise TaskNotFound(task_id) from None


async def touched(task: Task) -> list[str]:
    """Files the task changed: committed on its branch since the base, and not yet committed."""
    if not task.worktree_exists:
        return list(task.files_changed)
    worktree = worktree_of(task)
    committed = await git.changed_files(worktree, task.base_branch, "HEAD")
    pending = await git.status(worktree)
    return sorted(set(committed) | set(pending))


class TaskFields(TypedDict, total=False):
    """The columns of a task written with (or besides) a change of state; never its status or reason."""

    error: str
    next_prompt: str
    queued_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    merged_at: datetime | None
    merge_commit: str
    files_changed: list[str]
    conflict_with_id: int | None
    conflict_files: list[str]
    input_tokens: int
    output_tokens: int
    cost_usd: float
    pr_forge: str
    pr_repository: str
    pr_number: int | None
    pr_url: str
    pr_state: str
    stop_requested: str  # in cluster mode: why a person asked a running task to stop (read by its job)
    pr_head: str
    pr_checked_at: datetime | None


@sync_to_async
def usage(task: Task) -> TaskFields:
    """Tokens and cost of all the task's turns."""
    if task.session_id is None:
        return TaskFields(input_tokens=task.input_tokens, output_tokens=task.output_tokens, cost_usd=task.cost_usd)
    totals = Turn.objects.filter(session_id=task.session_id).aggregate(
        i=Sum("input_tokens"), o=Sum("output_tokens"), c=Sum("cost_usd")
    )
    return TaskFields(input_tokens=totals["i"] or 0, output_tokens=totals["o"] or 0, cost_usd=totals["c"] or 0.0)
