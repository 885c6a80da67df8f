"""What the tasks board and a task's page show, and sending it to the pages that watch."""

from __future__ import annotations

import asyncio

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.template.loader import render_to_string

from ..models import Turn
from ..sessions import latest_turns
from .models import Task

BOARD_GROUP = "tasks"


def log_context(task: Task) -> list[Turn]:
    """The latest turns of a task's session: its log, as a chat shows its latest messages."""
    return latest_turns(session=task.session) if task.session_id else []


def board_context(note: str | None = None) -> dict:
    tasks = list(Task.objects.select_related("conflict_with", "created_by").order_by("-priority", "-created_at")[:300])
    columns = [
        ("waiting", "Waiting", [t for t in tasks if t.status in (Task.Status.PENDING, Task.Status.QUEUED)]),
        ("running", "Running", [t for t in tasks if t.status == Task.Status.RUNNING]),
        ("paused", "Paused / needs attention", [t for t in tasks if t.status in (Task.Status.PAUSED, Task.Status.FAILED)]),
        ("completed", "Completed: review and merge", [t for t in tasks if t.status == Task.Status.COMPLETED]),
        ("closed", "Merged / cancelled", [t for t in tasks if t.status in Task.CLOSED][:50]),
    ]
    return {"columns": columns, "note": current_note() if note is None else note}


def current_note() -> str:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return ""
    from .scheduler import _schedulers

    scheduler = _schedulers.get(loop)
    return scheduler.note if scheduler else ""


def board_html(note: str | None) -> str:
    return render_to_string("tasks/board.html#board", {**board_context(note), "oob": True})


def task_group(task_id: int) -> str:
    """The group of one task's page: every page has the same ``#task-head``, so only its own task's may reach it."""
    return f"tasks-{int(task_id)}"


def task_html(task_id: int) -> str:
    task = Task.objects.select_related("conflict_with").get(pk=task_id)
    return render_to_string("tasks/detail.html#task-head", {"task": task, "oob": True})


def task_page_html(task_id: int) -> str:
    """The task's head and its whole log: what a page that (re)connects may have missed."""
    task = Task.objects.select_related("conflict_with").get(pk=task_id)
    context = {"task": task, "turns": log_context(task), "oob": True}
    return render_to_string("tasks/detail.html#task-head", context) + render_to_string("tasks/detail.html#log", context)


async def _send(group: str, html: str) -> None:
    layer = get_channel_layer()
    if layer is not None:
        await layer.group_send(group, {"type": "tasks.fragment", "html": html})


async def broadcast_board(*, note: str | None = None) -> None:
    note = current_note() if note is None else note
    await _send(BOARD_GROUP, await sync_to_async(board_html)(note))


async def broadcast_task(task_id: int) -> None:
    note = current_note()
    head, board = await sync_to_async(lambda: (task_html(task_id), board_html(note)))()
    await _send(task_group(task_id), head)
    await _send(BOARD_GROUP, board)
