"""Live fragments of the tasks board and of a task's page (sent through :mod:`chat.live.notify`).

Both differ per person: the board shows each the tasks of the projects open to them, a task's
head shows its buttons only to who may use them. So the board group and a task's page group get
a signal, and each socket renders the fragment for its own person (only sockets allowed to see a
task join its group).
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.template.loader import render_to_string

from chat.live import notify

from . import selectors
from .models import BoardNote

BOARD_GROUP = "tasks"
BOARD_CHANGED = "board.changed"
TASK_CHANGED = "task.changed"


def task_group(task_id: int) -> str:
    """The group of one task's page: every page has the same ``#task-head``, so only its own task's may reach it."""
    return f"tasks-{int(task_id)}"


def board_html(*, user: AbstractBaseUser | AnonymousUser, column: selectors.Column | None = None) -> str:
    """The board as ``user`` sees it; on a page showing one of its tabs (``column``), that tab's list."""
    visible = selectors.visible_tasks(user)
    if column is not None:
        tasks = selectors.in_column(visible, column, user=user)
        return render_to_string("tasks/board.html#filtered", {"filtered": tasks, "oob": True, "user": user})
    context = selectors.board_context(tasks=visible, note=BoardNote.read(), user=user)
    return render_to_string("tasks/board.html#board", {**context, "oob": True, "user": user})


def task_head_html(task_id: int, *, user: AbstractBaseUser | AnonymousUser) -> str:
    return render_to_string(
        "tasks/detail.html#task-head", {"task": selectors.task_for_page(task_id, user=user), "oob": True}
    )


def task_page_html(task_id: int, *, user: AbstractBaseUser | AnonymousUser, may_answer: bool) -> str:
    """The task's head and its whole log: what a page that (re)connects may have missed."""
    task = selectors.task_for_page(task_id, user=user)
    page = selectors.log_page(task)
    context = {"task": task, "turns": page.turns, "oob": True, "may_answer": may_answer}
    return render_to_string("tasks/detail.html#task-head", context) + render_to_string("tasks/detail.html#log", context)


async def board_changed() -> None:
    await notify.signal(BOARD_GROUP, BOARD_CHANGED)


async def task_changed(task_id: int) -> None:
    await notify.signal(task_group(task_id), TASK_CHANGED, task=str(int(task_id)))
    await board_changed()
