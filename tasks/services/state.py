"""The one writer of a task's state: :func:`transition`, and typed writes of its other columns.

A task's status (and reason) changes only here, and only as the table allows
(:data:`tasks.models.TRANSITIONS`): a compare-and-set on the state it was read in, so of two
requests that race (two Merges, a Discard and the scheduler) one wins and the other is refused,
saying the state it found and what can be done now. Each change is kept as an audit row
(:class:`~tasks.models.TaskTransition`: from, to, event, who, when, why) in the same database
transaction, and the pages hear of it once, after that transaction has committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import weakref
from collections.abc import AsyncIterator, Collection
from typing import Unpack

from asgiref.sync import async_to_sync, sync_to_async
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import transaction
from django.utils import timezone

from runtime import Engine

from .. import live
from ..models import (
    ACTION_EVENTS,
    NEEDS_CHANGES,
    Action,
    Task,
    TaskEvent,
    TaskStopReason,
    TaskTransition,
    transition_for,
)
from .common import TaskFields as TaskFields
from .common import TaskNotFound, TaskRefused

Person = AbstractBaseUser | AnonymousUser

# Read-then-set rounds before giving up: each lost round means the state changed meanwhile.
ROUNDS = 3


class TransitionRefused(TaskRefused):
    """The table allows no such change from the task's current state (or another request changed it first)."""

    def __init__(self, task: Task, event: TaskEvent) -> None:
        self.task, self.event = task, event
        super().__init__(refusal(task, event))


_WHY_NOT = {
    TaskEvent.PAUSE: "there is nothing to pause",
    TaskEvent.RESUME: "only a paused, failed or completed task can be resumed",
    TaskEvent.TERMINATE: "there is nothing to terminate",
    TaskEvent.MERGE: "only a completed task can be merged",
    TaskEvent.DISCARD: "there is nothing to discard",
}
_BUTTONS = {
    Action.PAUSE: "Pause",
    Action.RESUME: "Resume",
    Action.TERMINATE: "Terminate",
    Action.MERGE: "Merge",
    Action.DISCARD: "Discard",
    Action.PULL_REQUEST: "Open pull request",
}
_NOTHING = {
    Task.Status.RUNNING: "Wait for its run to end.",
    Task.Status.MERGED: "It is merged: nothing more can be done to it.",
    Task.Status.CANCELLED: "Its worktree and branch are gone: start a new task if there is more to do.",
}


def refusal(task: Task, event: TaskEvent) -> str:
    """Why ``event`` cannot happen to ``task`` now (its state named), and what can be done instead."""
    why = _WHY_NOT.get(event, f"it cannot take the step {str(event.label).lower()!r} now")
    can = [_BUTTONS[action] for action in Action if action in task.actions]
    what = f"What can be done now: {', '.join(can)}." if can else _NOTHING.get(Task.Status(task.status), "")
    return f"Task #{task.pk} is {task.status_text.lower()}: {why}. {what}".strip()


def require(task: Task, action: Action) -> None:
    """Refuse ``action`` unless the table allows it in the task's state (as its buttons show)."""
    if action in NEEDS_CHANGES and task.changed_nothing:
        raise TaskRefused(
            f"Task #{task.pk} changed no file: its branch has nothing to merge or propose. Send a follow-up "
            "instruction, or Discard the task."
        )
    if action not in task.actions:
        event = ACTION_EVENTS.get(action)
        if event is None:  # opening a pull request: a completed task's
            raise TaskRefused(
                f"Task #{task.pk} is {task.status_text.lower()}: only a completed task can open a pull request."
            )
        raise TransitionRefused(task, event)


def _by_id(by: Person | None) -> int | None:
    return by.pk if by is not None and by.is_authenticated else None


def _write(
    task_id: int,
    event: TaskEvent,
    by_id: int | None,
    why: str,
    fields: TaskFields,
    only_from: Collection[Task.Status],
) -> Task:
    """Compare-and-set the task's state and write its audit row, in one transaction."""
    for _ in range(ROUNDS):
        with transaction.atomic():
            current = Task.objects.filter(pk=task_id).values_list("status", "reason").first()
            if current is None:
                raise TaskNotFound(task_id)
            status, reason = current
            rule = transition_for(status, reason, event)
            if rule is None or (only_from and status not in only_from):
                break
            # Set only if the state is still the one read: a request that changed it meanwhile wins.
            if not Task.objects.filter(pk=task_id, status=status, reason=reason).update(
                status=rule.to, reason=rule.reason, **fields
            ):
                continue
            TaskTransition.objects.create(
                task_id=task_id,
                from_status=status,
                to_status=rule.to,
                reason=rule.reason,
                event=event,
                by_id=by_id,
                why=why,
            )
            return Task.objects.select_related("conflict_with").get(pk=task_id)
    raise TransitionRefused(Task.objects.select_related("conflict_with").get(pk=task_id), event)


async def transition(
    *,
    task_id: int,
    event: TaskEvent,
    by: Person | None = None,
    why: str = "",
    fields: TaskFields | None = None,
    only_from: Collection[Task.Status] = (),
) -> Task:
    """Change the task's state as :data:`~tasks.models.TRANSITIONS` says ``event`` does, with
    ``fields``; ``by``: who asked (None: the system); ``only_from``: narrower than the table (a
    Pause that must not reach a running task's row, whose run ends it). Raises
    :class:`TransitionRefused` if the task's state allows no such change; announces the change on
    the task's page and the board once it is committed."""
    task = await sync_to_async(_write)(task_id, event, _by_id(by), why, fields or {}, only_from)
    # _write's transaction has committed when it returns (async code runs in no outer transaction).
    await live.task_changed(task_id)
    return task


def transition_now(
    *, task_id: int, event: TaskEvent, by: Person | None = None, why: str = "", fields: TaskFields | None = None
) -> Task:
    """:func:`transition` for synchronous code (start-up's recovery): announced on commit."""
    task = _write(task_id, event, _by_id(by), why, fields or {}, ())
    transaction.on_commit(functools.partial(async_to_sync(live.task_changed), task_id))
    return task


def created(*, task: Task, by: Person | None) -> None:
    """The first audit row of a new task (its creation is not a transition: there is no state before)."""
    TaskTransition.objects.create(
        task=task, from_status="", to_status=task.status, event=TaskEvent.CREATE, by_id=_by_id(by), why=task.title
    )


async def update(*, task_id: int, announce: bool = True, **fields: Unpack[TaskFields]) -> Task:
    """Write columns of the task that are not its state (files it changed, its pull request, a note),
    and read it back; ``announce``: show the change on its pages."""
    await Task.objects.filter(pk=task_id).aupdate(**fields)
    if announce:
        await live.task_changed(task_id)
    return await Task.objects.select_related("conflict_with").aget(pk=task_id)


async def queue(
    *, task_id: int, prompt: str, engine: Engine, event: TaskEvent, by: Person | None = None, why: str = ""
) -> Task:
    """Queue the task's next run with ``prompt`` (``event``: RESUME, UNBLOCK); the scheduler starts
    it when there is room."""
    task = await transition(
        task_id=task_id,
        event=event,
        by=by,
        why=why,
        fields=TaskFields(error="", next_prompt=prompt, queued_at=timezone.now()),
    )
    engine.kick_tasks()
    return task


# Who asked a running task's run to stop, and why, until the run ends and writes the change: the
# engine hands the run back only the reason. Kept where the engine runs the run (this process).
_stops: dict[int, tuple[Person | None, str]] = {}


async def stop_run(*, engine: Engine, task_id: int, reason: TaskStopReason, by: Person | None, why: str = "") -> bool:
    """Ask the engine to stop the task's run (False: it does not run); its end writes the change."""
    mine = task_id not in _stops
    _stops.setdefault(task_id, (by, why))  # the first stop wins, as the engine keeps the first reason
    stopped = await engine.stop_task(task=task_id, reason=reason)
    if not stopped and mine:
        _stops.pop(task_id, None)
    return stopped


def stop_asked(task_id: int) -> tuple[Person | None, str]:
    """Who asked the task's run to stop, and why (None: the system), once: the run's end reads it."""
    return _stops.pop(task_id, (None, ""))


_acting: weakref.WeakValueDictionary[int, asyncio.Lock] = weakref.WeakValueDictionary()


@contextlib.asynccontextmanager
async def acting(task_id: int) -> AsyncIterator[None]:
    """One person's action on a task at a time (in this process): a second Merge or Discard waits
    for the first, then finds the state it left and is refused by the table, before any git runs.
    (Across processes, :func:`transition`'s compare-and-set still lets only one of them win.)"""
    lock = _acting.get(task_id)
    if lock is None:
        lock = _acting[task_id] = asyncio.Lock()
    async with lock:
        yield
