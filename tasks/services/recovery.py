"""After a restart: tasks that were running are marked interrupted, so they can be resumed."""

from __future__ import annotations

from django.utils import timezone

from ..models import Task


def recover_tasks() -> int:
    """Mark running tasks interrupted. Their turns and leftover CLI processes are ended by
    :func:`chat.services.recovery.recover_interrupted`, as every chat's are; start-up runs that first."""
    return Task.objects.filter(status=Task.Status.RUNNING).update(
        status=Task.Status.PAUSED,
        reason=Task.Reason.INTERRUPTED,
        finished_at=timezone.now(),
        error="The server restarted during this run; the worktree and session are kept. Press Resume to continue.",
    )
