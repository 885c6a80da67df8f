"""The records of cluster mode (``CLAUDE_ENGINE=cluster``): nodes, placements, turns across processes.

The cluster engine (:class:`runtime.cluster.ClusterEngine`) reads and writes these through
:class:`ChatCluster` (the tasks app adds its own records, ``tasks.services.cluster``).
"""

from __future__ import annotations

import os
import uuid
from datetime import timedelta
from pathlib import Path

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import IntegrityError
from django.db.models import Q, Sum
from django.utils import timezone

from drivers import claude
from runtime import PoolStatus
from runtime.cluster import TurnState

from ..models import Event, Node, Placement, StorageMark, Turn
from . import permissions
from .recording import Recorder
from .recovery import recover_interrupted

MARKER = ".claude-cluster-id"
INTERRUPTED_BY_NODE = (
    "The engine running this turn (node {node}) stopped answering, so the turn was ended; what came so far is "
    "kept. Send the message again: the chat continues on another engine, with its memory."
)
_RAN = (Turn.Status.DONE, Turn.Status.ERROR, Turn.Status.TIMEOUT)


def _alive(dead_after: float) -> Q:
    return Q(dead=False, seen_at__gte=timezone.now() - timedelta(seconds=dead_after))


class ChatCluster:
    """The chat app's part of :class:`runtime.cluster.ClusterHooks`."""

    def __init__(self, *, dead_after: float) -> None:
        self.dead_after = dead_after

    # -- where a session's turns go ------------------------------------------------------
    def home_sync(self, session: str) -> str | None:
        alive = Node.objects.filter(_alive(self.dead_after), draining=False).values("pk")
        return Placement.objects.filter(session=session, node__in=alive).values_list("node", flat=True).first()

    async def home(self, session: str) -> str | None:
        return await sync_to_async(self.home_sync)(session)

    async def taken(self, *, turn: int, session: str, node: str) -> None:
        await sync_to_async(self._taken)(turn, uuid.UUID(session), node)

    @staticmethod
    def _taken(turn: int, session: uuid.UUID, node: str) -> None:
        Turn.objects.filter(pk=turn).update(node=node)
        if not Placement.objects.filter(session=session, node=node).exists():  # (a follow-up: it is home already)
            Placement.objects.update_or_create(session=session, defaults={"node": node, "since": timezone.now()})

    # -- turns ---------------------------------------------------------------------------
    async def turn_state(self, turn: int) -> TurnState:
        row = await Turn.objects.filter(pk=turn).values("status", "started_at").afirst()
        if row is None:
            return TurnState.UNKNOWN
        status = row["status"]
        if status in (Turn.Status.QUEUED, Turn.Status.WAITING):
            return TurnState.WAITING
        if status in (Turn.Status.RUNNING, Turn.Status.ASKING):
            return TurnState.RUNNING
        if status in _RAN or row["started_at"] is not None:
            return TurnState.RAN
        return TurnState.DROPPED

    async def waiting_for(self, owner: int) -> int:
        return await Turn.objects.filter(
            session__owner_id=owner, status__in=(Turn.Status.QUEUED, Turn.Status.WAITING)
        ).acount()

    async def set_stop_note(self, turn: int, note: str) -> None:
        await Turn.objects.filter(pk=turn).aupdate(stop_note=note)

    async def stop_note(self, turn: int) -> str:
        return await Turn.objects.filter(pk=turn).values_list("stop_note", flat=True).afirst() or ""

    # -- nodes ---------------------------------------------------------------------------
    async def join(self, node: str) -> None:
        await Node.objects.aupdate_or_create(
            pk=node,
            defaults={"draining": False, "dead": False, "seen_at": timezone.now(), "started_at": timezone.now()},
        )

    async def beat(self, *, node: str, status: PoolStatus, warm: int, draining: bool, worker: int | None) -> bool:
        asked = await Node.objects.filter(pk=node).values_list("draining", flat=True).afirst()
        await Node.objects.aupdate_or_create(
            pk=node,
            defaults={
                "seen_at": timezone.now(),
                "dead": False,
                "draining": draining or bool(asked),
                "active": status.active,
                "limit": status.limit,
                "waiting": status.waiting,
                "total": status.total,
                "warm": warm,
                "worker_id": worker,
                "pid": os.getpid(),
                "pid_started": claude.process_start_time(os.getpid()),
                "host": os.uname().nodename,
            },
        )
        return bool(asked)

    async def cluster_status(self, *, dead_after: float) -> PoolStatus:
        totals = await Node.objects.filter(_alive(dead_after)).aaggregate(
            active=Sum("active"), limit=Sum("limit"), waiting=Sum("waiting"), total=Sum("total")
        )
        return PoolStatus(
            active=totals["active"] or 0,
            limit=totals["limit"] or 0,
            waiting=totals["waiting"] or 0,
            total=totals["total"] or 0,
        )

    async def dead_nodes(self, *, dead_after: float) -> list[str]:
        stale = Node.objects.filter(dead=False, seen_at__lt=timezone.now() - timedelta(seconds=dead_after))
        return [pk async for pk in stale.values_list("pk", flat=True)]

    async def node_gone(self, node: str) -> None:
        await Node.objects.filter(pk=node).aupdate(dead=True, active=0, waiting=0, warm=0)
        await Placement.objects.filter(node=node).adelete()

    async def leave(self, node: str) -> None:
        await Node.objects.filter(pk=node).aupdate(draining=True)
        await Placement.objects.filter(node=node).adelete()

    async def interrupted_turns(self, turns: list[int]) -> None:
        async for turn in Turn.objects.filter(pk__in=turns, status__in=Turn.PENDING).select_related("session"):
            await sync_to_async(permissions.cancel_open)(turn)
            await Recorder(turn).finish(Turn.Status.INTERRUPTED, error=INTERRUPTED_BY_NODE.format(node=turn.node))
            await Event.objects.filter(turn=turn, complete=False).aupdate(complete=True)

    # -- an engine's start -----------------------------------------------------------------
    def recover_turns_of(self, node: str) -> int:
        """End the CLI processes and mark the turns that ``node``'s earlier run left unfinished."""
        return recover_interrupted(node=node)

    def previous_worker(self, node: str) -> int | None:
        return Node.objects.filter(pk=node).values_list("worker_id", flat=True).first()

    async def check_storage(self) -> str:
        return await sync_to_async(check_storage)()


def check_storage() -> str:
    """ "" if this node sees the cluster's shared storage (the same marker id in each shared folder as in
    the database), else what is wrong and what to do. The first node of a cluster writes the marker."""
    folders = [Path(settings.CLAUDE_WORKDIR), Path(settings.CLAUDE_CONFIG_DIR), Path(settings.CLAUDE_ARCHIVE_DIR)]
    row = StorageMark.objects.filter(pk=StorageMark.ONE).first()
    if row is None:
        found = next((mark for folder in folders if (mark := _read_marker(folder))), "")
        try:
            row = StorageMark.objects.create(pk=StorageMark.ONE, mark=found or uuid.uuid4().hex)
        except IntegrityError:
            row = StorageMark.objects.get(pk=StorageMark.ONE)  # another node made it meanwhile
        for folder in folders:
            if not _read_marker(folder):
                folder.mkdir(parents=True, exist_ok=True)
                _write_marker(folder, row.mark)
    for folder in folders:
        mark = _read_marker(folder)
        if mark != row.mark:
            seen = f"holds {mark!r}" if mark else "has no marker"
            return (
                f"This engine does not see the cluster's shared storage: {folder / MARKER} {seen}, but the "
                f"database expects {row.mark!r}. Mount the storage every node shares at {folder} (the same path on "
                "every node: a transcript's path derives from its working directory), then start the engine again."
            )
    return ""


def _read_marker(folder: Path) -> str:
    try:
        fd = os.open(folder / MARKER, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return ""
    with os.fdopen(fd) as file:
        return file.read(200).strip()


def _write_marker(folder: Path, mark: str) -> None:
    try:
        fd = os.open(folder / MARKER, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    except FileExistsError:
        return
    with os.fdopen(fd, "w") as file:
        file.write(mark + "\n")
