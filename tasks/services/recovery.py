"""After a restart: tasks that were running are marked interrupted, so they can be resumed."""

from __future__ import annotations

from django.utils import timezone

from ..models import Task, TaskEvent
from .common import TaskNotFound
from .state import TaskFields, TransitionRefused, transition_now


def recover_tasks() -> int:
    """Mark running tasks interrupted (each with its audit row). Their turns and leftover CLI
    processes are ended by :func:`chat.services.recovery.recover_interrupted`, as every chat's are;
    start-up runs that first."""
    marked = 0
    for task_id in Task.objects.filter(status=Task.Status.RUNNING).values_list("pk", flat=True):
        try:
            transition_now(
                task_id=task_id,
                event=TaskEvent.INTERRUPT,
                why="the server restarted during its run",
                fields=TaskFields(
                    finished_at=timezone.now(),
                    error=(
                        "The server restarted during this run; the worktree and session are kept. Press Resume "
                        "to continue."
                    ),
                ),
            )
        except (TransitionRefused, TaskNotFound):
            continue
        marked += 1
    return marked
