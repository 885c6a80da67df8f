"""The records of cluster mode (``CLAUDE_ENGINE=cluster``): each engine process as it last reported
itself, which engine holds a chat's warm process, and the shared storage's marker.

Kept apart from :mod:`chat.models` (which re-exports them, so Django registers them with the chat
app and callers import them from there): they are the engines' bookkeeping, read and written only
by :mod:`chat.services.cluster` and the ``engine`` command, and nothing in them refers to a chat's
own rows (a placement names its session by id, no foreign key).
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class Node(models.Model):
    """An engine process of the cluster (``scripts/manage engine``), as it last reported itself: kept
    fresh by its heartbeat; the janitor ends what a node that stopped beating left."""

    id = models.CharField(primary_key=True, max_length=63)
    pid = models.IntegerField(null=True)
    pid_started = models.BigIntegerField(null=True)
    host = models.CharField(max_length=255, blank=True)
    # procrastinate's worker id of its current run: a restarted node finishes its last run's jobs.
    worker_id = models.BigIntegerField(null=True)
    draining = models.BooleanField(default=False)
    dead = models.BooleanField(default=False)
    seen_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(default=timezone.now)
    # Its process slots as /api/claude-code/pool/status reports them, added up over the nodes.
    active = models.IntegerField(default=0)
    limit = models.IntegerField(default=0)
    waiting = models.IntegerField(default=0)
    total = models.BigIntegerField(default=0)
    warm = models.IntegerField(default=0)

    def __str__(self) -> str:
        return self.id


class Placement(models.Model):
    """Which node holds a session's warm process: its next turns go to that node's queue."""

    # No foreign key: the placement outlives a deleted chat for as long as its warm process does.
    session = models.UUIDField(primary_key=True)
    node = models.CharField(max_length=63, db_index=True)
    since = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.session} on {self.node}"


class StorageMark(models.Model):
    """The id written once into the shared storage's marker file: every engine must find the same one."""

    ONE = 1
    id = models.PositiveSmallIntegerField(primary_key=True, default=ONE)
    mark = models.CharField(max_length=64)

    def __str__(self) -> str:
        return self.mark
