"""The records of cluster mode, the tasks' part: which node runs a task, why its run was asked to stop,
and what the janitor and an engine's start do to runs whose node died.

:class:`Cluster` is the whole of :class:`runtime.cluster.ClusterHooks` the composition root hands the
cluster engine: the chat app's records (:class:`chat.services.cluster.ChatCluster`) and these.
"""

from __future__ import annotations

from collections.abc import Callable

from asgiref.sync import sync_to_async
from django.db import transaction
from django.utils import timezone

from chat.services.cluster import ChatCluster

from ..models import Task, TaskEvent
from .common import TaskNotFound
from .scheduling import claim_next_sync
from .state import TaskFields, TransitionRefused, transition, transition_now

INTERRUPTED_RUN = (
    "The engine running this task (node {node}) stopped answering; the worktree and session are kept. "
    "Press Resume to continue on another engine."
)


class Cluster(ChatCluster):
    async def request_task_stop(self, task: int, reason: str) -> None:
        await Task.objects.filter(pk=task).aupdate(stop_requested=reason)

    async def task_stop_requested(self, task: int) -> str:
        return await Task.objects.filter(pk=task).values_list("stop_requested", flat=True).afirst() or ""

    async def task_taken(self, *, task: int, node: str) -> None:
        await Task.objects.filter(pk=task).aupdate(node=node)

    async def claim_and_queue(self, queue: Callable[[int], None]) -> int | None:
        return await sync_to_async(self._claim_and_queue)(queue)

    @staticmethod
    def _claim_and_queue(queue: Callable[[int], None]) -> int | None:
        # One commit: a task is never marked running with no job to run it (an engine dying in between).
        with transaction.atomic():
            task = claim_next_sync(set())
            if task is not None:
                queue(task)
        return task

    async def running_tasks(self) -> int:
        return await Task.objects.filter(status=Task.Status.RUNNING).acount()

    async def interrupted(self, *, turns: list[int], tasks: list[int]) -> None:
        await self.interrupted_turns(turns)
        async for task, node in Task.objects.filter(pk__in=tasks, status=Task.Status.RUNNING).values_list("pk", "node"):
            fields = TaskFields(finished_at=timezone.now(), error=INTERRUPTED_RUN.format(node=node))
            try:
                await transition(task_id=task, event=TaskEvent.INTERRUPT, why=f"node {node} died", fields=fields)
            except (TransitionRefused, TaskNotFound):
                continue  # it ended meanwhile

    async def recover_node(self, *, node: str) -> tuple[list[str], int | None]:
        return await sync_to_async(self._recover_node)(node)

    def _recover_node(self, node: str) -> tuple[list[str], int | None]:
        lines = []
        if turns := self.recover_turns_of(node):
            lines.append(f"Marked {turns} turn(s) the last run of node {node} left unfinished as interrupted.")
        tasks = 0
        for task_id in Task.objects.filter(status=Task.Status.RUNNING, node=node).values_list("pk", flat=True):
            fields = TaskFields(
                finished_at=timezone.now(),
                error="The engine restarted during this run; the worktree and session are kept. Press Resume to continue.",
            )
            try:
                transition_now(task_id=task_id, event=TaskEvent.INTERRUPT, why=f"node {node} restarted", fields=fields)
            except (TransitionRefused, TaskNotFound):
                continue
            tasks += 1
        if tasks:
            lines.append(f"Marked {tasks} task(s) node {node} left running as interrupted (press Resume).")
        return lines, self.previous_worker(node)
