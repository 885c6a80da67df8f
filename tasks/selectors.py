"""The read side of tasks: the board's columns and a task's log."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Q

from chat import projects
from chat.models import Turn
from chat.selectors import TurnPage, latest_turns

from .models import Task, TaskQuerySet, may_act

BOARD_SIZE = 300
CLOSED_SHOWN = 50


def log_page(task: Task) -> TurnPage:
    """The latest turns of a task's session: its log, as a chat shows its latest messages."""
    if task.session is None:
        return TurnPage(turns=[], has_older=False)
    return latest_turns(session=task.session)


def _asking_sessions() -> set[uuid.UUID]:
    """Sessions whose turn waits for an answer to a permission prompt (few: only running turns ask)."""
    return set(Turn.objects.filter(status=Turn.Status.ASKING).values_list("session_id", flat=True))


def board_context(*, tasks: TaskQuerySet, note: str, user: AbstractBaseUser | AnonymousUser) -> dict[str, Any]:
    """The board's columns of ``tasks`` (the ones ``user`` may see); "needs you" on those whose run
    waits for an answer ``user`` may give."""
    shown = list(
        tasks.select_related("conflict_with", "created_by", "session").order_by("-priority", "-created_at")[:BOARD_SIZE]
    )
    asking = _asking_sessions()
    for task in shown:
        task.asking = task.session_id in asking
        task.needs_you = task.asking and task.session is not None and task.session.answerable_by(user)
        task.viewer_may_act = may_act(user, task)
    columns = [
        ("waiting", "Waiting", [t for t in shown if t.status in (Task.Status.PENDING, Task.Status.QUEUED)]),
        ("running", "Running", [t for t in shown if t.status == Task.Status.RUNNING]),
        (
            "paused",
            "Paused / needs attention",
            [t for t in shown if t.status in (Task.Status.PAUSED, Task.Status.FAILED)],
        ),
        ("completed", "Completed: review and merge", [t for t in shown if t.status == Task.Status.COMPLETED]),
        ("closed", "Merged / cancelled", [t for t in shown if t.status in Task.CLOSED][:CLOSED_SHOWN]),
    ]
    return {"columns": columns, "note": note}


def with_status(tasks: TaskQuerySet, status: str, *, user: AbstractBaseUser | AnonymousUser) -> list[Task]:
    shown = list(tasks.filter(status=status).order_by("-priority", "-created_at")[:BOARD_SIZE])
    for task in shown:
        task.viewer_may_act = may_act(user, task)
    return shown


def task_for_page(task_id: int, *, user: AbstractBaseUser | AnonymousUser) -> Task:
    """The task as ``user`` sees it on its page (its buttons only if they may act on it)."""
    task = Task.objects.select_related("conflict_with", "session", "created_by").get(pk=task_id)
    task.asking = task.session_id is not None and task.session_id in _asking_sessions()
    task.viewer_may_act = may_act(user, task)
    return task


def visible_tasks(user: AbstractBaseUser | AnonymousUser) -> TaskQuerySet:
    """The tasks a person may see: staff all; others those in shared projects open to them, and
    their own in their own folder."""
    tasks = Task.objects.all()
    if getattr(user, "is_staff", False):
        return tasks
    if not user.is_authenticated:
        return tasks.none()
    shared = [key for key in settings.CLAUDE_PROJECTS if projects.may_use(user, key)]
    return tasks.filter(Q(project__in=shared) | Q(project=projects.OWN, created_by_id=user.pk))


def open_task_sessions(session_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, str]:
    """The sessions among ``session_ids`` whose task is not merged or discarded yet, each with why
    it must not be archived: a run, a follow-up or the merge of that task needs its transcript."""
    found = Task.objects.open().filter(session_id__in=list(session_ids)).values_list("session_id", "pk", "status")
    return {
        session_id: (
            f"its task #{task_id} is {Task.Status(status).label.lower()}, not merged or discarded yet: "
            "it needs its session until then"
        )
        for session_id, task_id, status in found
    }
