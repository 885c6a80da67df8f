"""Live fragments of the tasks board and of a task's page (sent through :mod:`chat.live.notify`)."""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.template.loader import render_to_string

from chat.live import notify

from . import selectors

BOARD_GROUP = "tasks"


def task_group(task_id: int) -> str:
    """The group of one task's page: every page has the same ``#task-head``, so only its own task's may reach it."""
    return f"tasks-{int(task_id)}"


def board_html(note: str) -> str:
    return render_to_string("tasks/board.html#board", {**selectors.board_context(note=note), "oob": True})


def task_head_html(task_id: int) -> str:
    return render_to_string("tasks/detail.html#task-head", {"task": selectors.task_for_page(task_id), "oob": True})


def task_page_html(task_id: int) -> str:
    """The task's head and its whole log: what a page that (re)connects may have missed."""
    task = selectors.task_for_page(task_id)
    page = selectors.log_page(task)
    context = {"task": task, "turns": page.turns, "oob": True}
    return render_to_string("tasks/detail.html#task-head", context) + render_to_string("tasks/detail.html#log", context)


async def board_changed(*, note: str) -> None:
    await notify.send(BOARD_GROUP, await sync_to_async(board_html)(note))


async def task_changed(task_id: int, *, note: str) -> None:
    head, board = await sync_to_async(lambda: (task_head_html(task_id), board_html(note)))()
    await notify.send(task_group(task_id), head)
    await notify.send(BOARD_GROUP, board)
