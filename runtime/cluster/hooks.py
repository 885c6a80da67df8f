"""What the cluster engine asks of the services (the database's records), and the names it shares.

No Django imports: the services implement :class:`ClusterHooks` over their models; the engine talks
to procrastinate's queue itself.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Protocol

from ..pool import PoolStatus

# procrastinate's names: one queue per node (the sessions warm there), one every node takes from.
SHARED_QUEUE = "shared"
TURN_JOB = "claude.turn"
TASK_JOB = "claude.task"
SCHEDULE_JOB = "claude.schedule"
CLOSE_JOB = "claude.close"
# One scheduler round at a time in the whole cluster (a lock across all queues) and at most one waiting.
SCHEDULER_LOCK = "claude-scheduler"


def node_queue(node: str) -> str:
    return f"node:{node}"


def session_lock(session: str) -> str:
    """The lock of a session's jobs: procrastinate never runs two jobs of one lock at once, anywhere,
    and runs those of one priority in the order they were queued."""
    return f"session:{session}"


def task_lock(task: int) -> str:
    return f"task:{task}"


class TurnState(enum.StrEnum):
    WAITING = "waiting"  # saved, not running yet (queued, or waiting for a process slot)
    RUNNING = "running"  # running (or asking a person)
    RAN = "ran"  # ended after it ran
    DROPPED = "dropped"  # ended without having run
    UNKNOWN = "unknown"


class ClusterHooks(Protocol):
    """The records the cluster engine reads and writes (the services' models)."""

    # -- where a session's turns go ------------------------------------------------------
    def home_sync(self, session: str) -> str | None:
        """The node holding the session's warm process, if it is alive and not draining (called in the
        transaction that saves a turn)."""

    async def home(self, session: str) -> str | None:
        """As :meth:`home_sync`, from async code."""

    async def taken(self, *, turn: int, session: str, node: str) -> None:
        """``node`` took the turn: it is the session's home now."""

    # -- the turns' records --------------------------------------------------------------
    async def turn_state(self, turn: int) -> TurnState: ...

    async def waiting_for(self, owner: int) -> int:
        """How many of the owner's turns wait to run, in the whole cluster."""

    async def set_stop_note(self, turn: int, note: str) -> None:
        """Why a turn is taken back (the node that holds it reads it)."""

    async def stop_note(self, turn: int) -> str: ...

    # -- tasks ---------------------------------------------------------------------------
    async def request_task_stop(self, task: int, reason: str) -> None: ...

    async def task_stop_requested(self, task: int) -> str: ...

    async def task_taken(self, *, task: int, node: str) -> None: ...

    async def claim_and_queue(self, queue: Callable[[int], None]) -> int | None:
        """Mark the next queued task (priority, then age) running and ``queue`` its run's job (called on
        the same connection), in one transaction; its id, or None if none is queued."""

    async def running_tasks(self) -> int:
        """Tasks running in the whole cluster (claimed by the scheduler, not yet ended)."""

    # -- nodes ---------------------------------------------------------------------------
    async def join(self, node: str) -> None:
        """The node starts serving (not draining, not dead)."""

    async def beat(self, *, node: str, status: PoolStatus, warm: int, draining: bool, worker: int | None) -> bool:
        """The node is alive: its figures (kept fresh for the pool's status). True: it was asked to drain."""

    async def cluster_status(self, *, dead_after: float) -> PoolStatus:
        """The figures of the nodes alive, added up."""

    async def dead_nodes(self, *, dead_after: float) -> list[str]:
        """Nodes that have not beaten for ``dead_after`` seconds and are not yet cleared."""

    async def node_gone(self, node: str) -> None:
        """The node is dead (or drained): its sessions have no home any more."""

    async def leave(self, node: str) -> None:
        """The node drains: no new turn is placed on it; its sessions lose their home."""

    async def interrupted(self, *, turns: list[int], tasks: list[int]) -> None:
        """End these turns and task runs, whose node died under them, as interrupted."""

    async def recover_node(self, *, node: str) -> tuple[list[str], int | None]:
        """At an engine's start: end what the node's earlier run left (its CLI processes, its turns and
        task runs as interrupted); what was done, for the log, and that run's worker id."""

    async def check_storage(self) -> str:
        """ "" if this node sees the cluster's shared storage, else what is wrong and what to do."""
