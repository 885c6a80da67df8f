"""The read side of tasks: the board's columns and a task's log."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Max, Q

from chat import projects
from chat.models import Turn
from chat.selectors import TurnPage, latest_turns

from .models import CheckRun, PullFeedback, Task, TaskQuerySet, TaskTransition, may_act

BOARD_SIZE = 300
CLOSED_SHOWN = 50


@dataclass(frozen=True)
class Column:
    """A column of the board, and the filter tab of the same name: one vocabulary for both."""

    key: str
    label: str
    statuses: tuple[Task.Status, ...]
    limit: int | None = None


_S = Task.Status
COLUMNS = (
    Column("waiting", "Waiting", (_S.PENDING, _S.QUEUED)),
    Column("running", "Running", (_S.RUNNING,)),
    Column("paused", "Paused / needs attention", (_S.PAUSED, _S.FAILED)),
    Column("completed", "Completed: review and merge", (_S.COMPLETED,)),
    Column("closed", "Merged / cancelled", Task.CLOSED, limit=CLOSED_SHOWN),
)


def column_named(key: str) -> Column | None:
    """The column ``key`` names, also by one of its statuses (``?status=queued`` of older links)."""
    return next((c for c in COLUMNS if key == c.key or key in c.statuses), None)


def log_page(task: Task) -> TurnPage:
    """The latest turns of a task's session: its log, as a chat shows its latest messages."""
    if task.session is None:
        return TurnPage(turns=[], has_older=False)
    return latest_turns(session=task.session)


def _asking_sessions() -> set[uuid.UUID]:
    """Sessions whose turn waits for an answer to a permission prompt (few: only running turns ask)."""
    return set(Turn.objects.filter(status=Turn.Status.ASKING).values_list("session_id", flat=True))


def _as_seen_by(task: Task, user: AbstractBaseUser | AnonymousUser) -> None:
    """What differs per person: their buttons, and how the task's folder is named to them."""
    task.viewer_may_act = may_act(user, task)
    task.place = projects.place_label(key=task.project, owner=task.created_by, viewer=user)


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
        _as_seen_by(task, user)
    with_latest_checks(shown)
    columns = [
        (column.key, column.label, [t for t in shown if t.status in column.statuses][: column.limit])
        for column in COLUMNS
    ]
    return {"columns": columns, "note": note}


def in_column(tasks: TaskQuerySet, column: Column, *, user: AbstractBaseUser | AnonymousUser) -> list[Task]:
    """The tasks of one column of the board (its filter tab), as many as the board holds."""
    found = tasks.filter(status__in=column.statuses).select_related("created_by", "conflict_with")
    shown = list(found.order_by("-priority", "-created_at")[:BOARD_SIZE])
    for task in shown:
        _as_seen_by(task, user)
    with_latest_checks(shown)
    return shown


def with_latest_checks(tasks: list[Task], *, output: bool = False) -> None:
    """Each task's latest setup or check (a card's pass/fail badge): two queries for them all, its
    output read only if asked."""
    latest = (
        CheckRun.objects.filter(task__in=[task.pk for task in tasks])
        .values("task_id")
        .annotate(last=Max("id"))
        .values_list("last", flat=True)
    )
    runs = CheckRun.objects.filter(pk__in=list(latest))
    found = {run.task_id: run for run in (runs if output else runs.defer("output", "command"))}
    for task in tasks:
        task.latest_check = found.get(task.pk)


def task_for_page(task_id: int, *, user: AbstractBaseUser | AnonymousUser) -> Task:
    """The task as ``user`` sees it on its page (its buttons only if they may act on it)."""
    task = Task.objects.select_related("conflict_with", "session", "created_by").get(pk=task_id)
    task.asking = task.session_id is not None and task.session_id in _asking_sessions()
    task.history = history(task)
    task.latest_check = CheckRun.objects.filter(task=task).order_by("-id").first()
    if task.pr_number is not None:
        task.feedback = list(task.pull_feedback.exclude(state=PullFeedback.State.GONE))
    _as_seen_by(task, user)
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


# A task's page shows its latest changes of state; the admin lists them all.
HISTORY_SHOWN = 12


def history(task: Task, *, limit: int = HISTORY_SHOWN) -> list[TaskTransition]:
    """The task's latest changes of state (its audit rows), oldest first: its page's History."""
    rows = TaskTransition.objects.filter(task=task).select_related("by").order_by("-at", "-id")[:limit]
    return list(reversed(rows))
