"""Live fragments of the tasks board and of a task's page (sent through :mod:`chat.live.notify`).

A task's page group gets its head as HTML: only sockets allowed to see that task join it. The
board differs per person (each sees the tasks of the projects open to them), so the board group
gets a signal, and each socket renders the board for its own person.
"""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.template.loader import render_to_string

from chat.live import notify

from . import selectors

BOARD_GROUP = "tasks"
BOARD_CHANGED = "board.changed"


def task_group(task_id: int) -> str:
    """The group of one task's page: every page has the same ``#task-head``, so only its own task's may reach it."""
    return f"tasks-{int(task_id)}"


def board_html(*, user: AbstractBaseUser | AnonymousUser, note: str) -> str:
    context = selectors.board_context(tasks=selectors.visible_tasks(user), note=note, user=user)
    return render_to_string("tasks/board.html#board", {**context, "oob": True, "user": user})


def task_head_html(task_id: int) -> str:
    return render_to_string("tasks/detail.html#task-head", {"task": selectors.task_for_page(task_id), "oob": True})


def task_page_html(task_id: int, *, may_answer: bool) -> str:
    """The task's head and its whole log: what a page that (re)connects may have missed."""
    task = selectors.task_for_page(task_id)
    page = selectors.log_page(task)
    context = {"task": task, "turns": page.turns, "oob": True, "may_answer": may_answer}
    return render_to_string("tasks/detail.html#task-head", context) + render_to_string("tasks/detail.html#log", context)


async def board_changed(*, note: str) -> None:
    await notify.signal(BOARD_GROUP, BOARD_CHANGED, note=note)


async def task_changed(task_id: int, *, note: str) -> None:
    await notify.send(task_group(task_id), await sync_to_async(task_head_html)(task_id))
    await board_changed(note=note)
