"""How a task's state changes: its states (:class:`Status`, and :class:`Reason` a paused one waits),
what happens to it (:class:`TaskEvent`), and one table, :data:`TRANSITIONS`, of where each event
takes it. What a person may do in each state (:data:`ACTIONS`, the buttons) is read from that table.

Its own module, beside :mod:`tasks.models` (which re-exports every name here, and gives
:class:`~tasks.models.Task` these states as ``Task.Status`` and ``Task.Reason``), so the table is
read in one place rather than between the model's fields and properties; it needs no model, so the
model imports it, never the other way round.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from django.db import models


class Status(models.TextChoices):
    PENDING = "pending", "Pending"
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    PAUSED = "paused", "Paused"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    MERGED = "merged", "Merged"
    CANCELLED = "cancelled", "Cancelled"


class Reason(models.TextChoices):
    """Why a paused task waits (blank when it does not)."""

    NONE = "", "—"
    USER = "user", "Paused by a person"
    CONFLICT = "conflict", "Waits for another task to be merged"
    ATTENTION = "attention", "Needs attention: the rebase conflicts"
    INTERRUPTED = "interrupted", "Interrupted by a server restart"


class Action(enum.StrEnum):
    PAUSE = "pause"
    RESUME = "resume"  # also a completed task's follow-up instruction
    TERMINATE = "terminate"
    MERGE = "merge"
    DISCARD = "discard"
    PULL_REQUEST = "pull-request"  # push the branch, open (or update) its pull request on the forge


class TaskEvent(models.TextChoices):
    """What happens to a task: the events of :data:`TRANSITIONS` (and of its audit rows)."""

    CREATE = "create", "Created"  # only the first audit row: a task is created, not transitioned
    QUEUE = "queue", "Queued"  # its worktree's name and session are saved: it may start
    START = "start", "Started"  # the scheduler took it
    COMPLETE = "complete", "Completed"
    FAIL = "fail", "Failed"
    PAUSE = "pause", "Paused"
    INTERRUPT = "interrupt", "Interrupted"  # the server stopped during its run
    BLOCK = "block", "Waits for files"  # an edit of a file another unmerged task holds
    CONFLICT = "conflict", "Conflicts"  # merging it, or rebasing it onto its base, conflicts
    UNBLOCK = "unblock", "Rebased and resumed"  # the task holding its files was merged or discarded
    RESUME = "resume", "Resumed"  # also a completed task's follow-up, and resolving a conflict
    MERGE = "merge", "Merged"  # here, or its pull request on the forge
    DISCARD = "discard", "Discarded"
    TERMINATE = "terminate", "Terminated"


class TaskStopReason(enum.StrEnum):
    """Why a task's run was stopped, as the engine hands it back to the run (see
    :meth:`runtime.Engine.stop_task`); a turn's own stop is :class:`runtime.StopReason`."""

    PAUSE = "user"
    TERMINATE = "terminate"


@dataclass(frozen=True)
class Transition:
    """Where an event takes a task: its new status and reason. ``from_reasons``: only a task
    waiting for one of these reasons may take it (None: whatever its reason)."""

    to: Status
    reason: Reason = Reason.NONE
    from_reasons: frozenset[Reason] | None = None


_S, _R, _E = Status, Reason, TaskEvent
_NOT_WAITING_FOR_FILES = frozenset(set(_R) - {_R.CONFLICT})
# Every change of a task's state: (from, event) -> where it goes. The buttons (ACTIONS below),
# the guards of the services and the one writer of the state (tasks.services.state) read it;
# the README's table is checked against it.
TRANSITIONS: dict[tuple[Status, TaskEvent], Transition] = {
    (_S.PENDING, _E.QUEUE): Transition(_S.QUEUED),
    (_S.PENDING, _E.PAUSE): Transition(_S.PAUSED, _R.USER),
    (_S.PENDING, _E.TERMINATE): Transition(_S.CANCELLED),
    (_S.PENDING, _E.DISCARD): Transition(_S.CANCELLED),
    (_S.QUEUED, _E.START): Transition(_S.RUNNING),
    (_S.QUEUED, _E.PAUSE): Transition(_S.PAUSED, _R.USER),
    (_S.QUEUED, _E.TERMINATE): Transition(_S.CANCELLED),
    (_S.QUEUED, _E.DISCARD): Transition(_S.CANCELLED),
    (_S.RUNNING, _E.COMPLETE): Transition(_S.COMPLETED),
    (_S.RUNNING, _E.FAIL): Transition(_S.FAILED),
    (_S.RUNNING, _E.PAUSE): Transition(_S.PAUSED, _R.USER),
    (_S.RUNNING, _E.INTERRUPT): Transition(_S.PAUSED, _R.INTERRUPTED),
    (_S.RUNNING, _E.BLOCK): Transition(_S.PAUSED, _R.CONFLICT),
    (_S.RUNNING, _E.TERMINATE): Transition(_S.CANCELLED),
    (_S.PAUSED, _E.RESUME): Transition(_S.QUEUED, from_reasons=_NOT_WAITING_FOR_FILES),
    (_S.PAUSED, _E.UNBLOCK): Transition(_S.QUEUED, from_reasons=frozenset({_R.CONFLICT})),
    (_S.PAUSED, _E.CONFLICT): Transition(_S.PAUSED, _R.ATTENTION, from_reasons=frozenset({_R.CONFLICT})),
    (_S.PAUSED, _E.TERMINATE): Transition(_S.CANCELLED),
    (_S.PAUSED, _E.DISCARD): Transition(_S.CANCELLED),
    (_S.FAILED, _E.RESUME): Transition(_S.QUEUED),
    (_S.FAILED, _E.DISCARD): Transition(_S.CANCELLED),
    (_S.COMPLETED, _E.RESUME): Transition(_S.QUEUED),
    (_S.COMPLETED, _E.MERGE): Transition(_S.MERGED),
    (_S.COMPLETED, _E.CONFLICT): Transition(_S.PAUSED, _R.ATTENTION),
    (_S.COMPLETED, _E.DISCARD): Transition(_S.CANCELLED),
    # Terminating keeps the worktree and branch: Discard removes them (see Task.actions).
    (_S.CANCELLED, _E.DISCARD): Transition(_S.CANCELLED),
}


def transition_for(status: Status | str, reason: Reason | str, event: TaskEvent) -> Transition | None:
    """The transition ``event`` takes from this state, or None if the table has none."""
    rule = TRANSITIONS.get((Status(status), event))
    if rule is None or (rule.from_reasons is not None and Reason(reason) not in rule.from_reasons):
        return None
    return rule


# A person's action and the event it is (opening a pull request changes no state: completed only).
ACTION_EVENTS: dict[Action, TaskEvent] = {
    Action.PAUSE: TaskEvent.PAUSE,
    Action.RESUME: TaskEvent.RESUME,
    Action.TERMINATE: TaskEvent.TERMINATE,
    Action.MERGE: TaskEvent.MERGE,
    Action.DISCARD: TaskEvent.DISCARD,
}
# What may be done to a task in each status: read from the table above, for the buttons and guards.
ACTIONS: dict[Status, frozenset[Action]] = {
    status: frozenset(action for action, event in ACTION_EVENTS.items() if (status, event) in TRANSITIONS)
    | (frozenset({Action.PULL_REQUEST}) if status == _S.COMPLETED else frozenset())
    for status in Status
}


# Only offered where the task's project has a remote and forge (tasks.remotes).
NEEDS_REMOTE: frozenset[Action] = frozenset({Action.PULL_REQUEST})
# Only offered when the task changed a file: its branch has something to merge or to propose.
NEEDS_CHANGES: frozenset[Action] = frozenset({Action.MERGE, Action.PULL_REQUEST})
