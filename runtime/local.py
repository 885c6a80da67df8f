"""The engine in this process: one node, one queue per session, the task scheduler, all in memory.

No Django imports. What the server has always done, behind :class:`runtime.engine.Engine`: turns
wait in their session's queue (:mod:`runtime.turns`) for the node's process slots and run on the
node (:class:`runtime.node.NodeRuntime`); tasks run under :class:`runtime.scheduler.TaskScheduler`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from drivers.egress import EgressProxy

from .engine import Engine, TaskHooks, TurnHooks
from .node import NodeRuntime
from .outcomes import StopReason
from .pool import PoolStatus
from .scheduler import Hold, TaskScheduler
from .turns import Ticket, TurnQueue

# How long turns that run may take to end once the node told them it shuts down (each closes its
# process, which the CLI is given a few seconds to leave), before they are cancelled.
SHUTDOWN_GRACE_SECONDS = 20.0


class _SavedTurn:
    """The queue's job of one saved turn: the engine's turn hooks, by its id."""

    def __init__(self, turn: int, *, hooks: TurnHooks, node: NodeRuntime, local: object) -> None:
        self.turn = turn
        self.hooks = hooks
        self.node = node
        self.local = local
        self.note = ""  # why it was withdrawn, if it was

    async def waiting(self) -> None:
        await self.hooks.waiting(self.turn)

    async def run(self, ticket: Ticket) -> None:
        await self.hooks.run(self.turn, node=self.node, local=self.local)

    async def dropped(self, reason: StopReason) -> None:
        await self.hooks.dropped(self.turn, reason=reason, note=self.note)


class _TaskRuns:
    """The scheduler's hooks: the tasks app's, with this engine handed to each run."""

    def __init__(self, hooks: TaskHooks, engine: Engine) -> None:
        self.hooks = hooks
        self.engine = engine

    async def claim_next(self, exclude: set[int]) -> int | None:
        return await self.hooks.claim_next(exclude)

    async def run(self, task_id: int) -> None:
        await self.hooks.run(task_id, engine=self.engine)

    async def hold(self) -> Hold | None:
        return await self.hooks.hold()

    async def note_changed(self, note: str) -> None:
        await self.hooks.note_changed(note)


class LocalEngine(Engine):
    def __init__(
        self,
        *,
        node: NodeRuntime,
        turn_hooks: TurnHooks,
        task_hooks: TaskHooks,
        max_tasks: int,
        prewarm_seconds: float = 0.0,
    ) -> None:
        self.node = node
        self.prewarm_seconds = prewarm_seconds
        self.turns = TurnQueue(node)
        self.tasks = TaskScheduler(limit=max_tasks, hooks=_TaskRuns(task_hooks, self))
        self._turn_hooks = turn_hooks
        self._tickets: dict[int, Ticket] = {}

    # -- turns ----------------------------------------------------------------------------------
    async def submit(self, *, turn: int, session: str, owner: int | None, local: object = None) -> None:
        job = _SavedTurn(turn, hooks=self._turn_hooks, node=self.node, local=local)
        ticket = self.turns.submit(key=turn, session=session, owner=owner, job=job)
        self._tickets[turn] = ticket
        ticket.done.add_done_callback(lambda _: self._tickets.pop(turn, None))

    async def stop(self, *, session: str) -> bool:
        return self.turns.stop(session)

    async def withdraw(self, *, session: str, turn: int, note: str) -> bool:
        ticket = self.turns.find(session, turn)
        if ticket is None or not isinstance(ticket.job, _SavedTurn):
            return False
        ticket.job.note = note
        return await self.turns.withdraw(ticket)

    async def wait_started(self, *, turn: int) -> bool:
        ticket = self._tickets.get(turn)
        return False if ticket is None else await ticket.wait_started()

    async def wait_ended(self, *, turn: int) -> None:
        ticket = self._tickets.get(turn)
        if ticket is not None:
            await ticket.wait()

    async def waiting_for(self, *, owner: int) -> int:
        return self.turns.waiting_for(owner)

    async def pool_status(self) -> PoolStatus:
        return self.node.status()

    async def prewarm(self, *, session: str, owner: int, draft: object = None) -> bool:
        if self.prewarm_seconds <= 0 or self.turns.is_busy(session) or self.node.warm.has(session):
            return False  # (asked before the database is)
        spec = await self._turn_hooks.spec_ahead(session, owner=owner, draft=draft, node=self.node)
        if spec is None:
            return False
        return self.node.prewarm(spec, owner=owner, unused_seconds=self.prewarm_seconds)

    def close_warm(self, *, session: str, wait: float = 0.0) -> None:
        if wait:
            self.node.warm.close_and_wait(session, timeout=wait)
        else:
            self.node.warm.drop(session)

    # -- tasks ----------------------------------------------------------------------------------
    def agent_egress(self) -> EgressProxy | None:
        return self.node.egress

    def kick_tasks(self) -> None:
        self.tasks.kick()

    async def stop_task(self, *, task: int, reason: str) -> bool:
        return self.tasks.stop(task, reason)

    async def task_settled(self, *, task: int) -> None:
        await self.tasks.settled(task)

    def task_stop_reason(self, *, task: int) -> str | None:
        return self.tasks.stop_reason(task)

    def spawn(self, job: Coroutine[Any, Any, Any], *, name: str) -> None:
        self.tasks.spawn(job, name=name)

    # -- life -----------------------------------------------------------------------------------
    async def start(self) -> None:
        # Queued tasks start once the composition root has recovered what an earlier run left (kick).
        await self.node.start()

    async def idle(self) -> None:
        while True:
            await self.tasks.idle()
            await self.turns.idle()
            if not self.tasks.running and not self.turns.has_work():
                return
            # A finished task stays in ``running`` until its done callback runs; both waits above
            # return without yielding when nothing is unfinished, so yield here or spin for ever.
            await asyncio.sleep(0)

    async def shutdown(self) -> None:
        await self.tasks.shutdown()
        self.turns.close()
        self.node.stop_all()  # running turns end as shut down, their processes closed
        await self.turns.shutdown(grace=SHUTDOWN_GRACE_SECONDS)
        await self.node.shutdown()
