"""The read side of tasks: the board's columns and a task's log."""

from __future__ import annotations

from typing import Any

from chat.selectors import TurnPage, latest_turns

from .models import Task

BOARD_SIZE = 300
CLOSED_SHOWN = 50


def log_page(task: Task) -> TurnPage:
    """The latest turns of a task's session: its log, as a chat shows its latest messages."""
    if task.session is None:
        return TurnPage(turns=[], has_older=False)
    return latest_turns(session=task.session)


def board_context(*, note: str) -> dict[str, Any]:
    tasks = list(Task.objects.select_related("conflict_with", "created_by").order_by("-priority", "-created_at")[:BOARD_SIZE])
    columns = [
        ("waiting", "Waiting", [t for t in tasks if t.status in (Task.Status.PENDING, Task.Status.QUEUED)]),
        ("running", "Running", [t for t in tasks if t.status == Task.Status.RUNNING]),
        ("paused", "Paused / needs attention", [t for t in tasks if t.status in (Task.Status.PAUSED, Task.Status.FAILED)]),
        ("completed", "Completed: review and merge", [t for t in tasks if t.status == Task.Status.COMPLETED]),
        ("closed", "Merged / cancelled", [t for t in tasks if t.status in Task.CLOSED][:CLOSED_SHOWN]),
    ]
    return {"columns": columns, "note": note}


def with_status(status: str) -> list[Task]:
    return list(Task.objects.filter(status=status).order_by("-priority", "-created_at")[:BOARD_SIZE])


def task_for_page(task_id: int) -> Task:
    return Task.objects.select_related("conflict_with", "session").get(pk=task_id)
