"""After a restart: no CLI process of the last run is left, and no turn stays "running" forever."""

from __future__ import annotations

from django.utils import timezone

from drivers import claude

from ..models import Event, Session, Turn
from . import permissions
from .recording import refresh_session_status

INTERRUPTED_BY_RESTART = (
    "The server restarted before this turn finished; what came so far is kept. Send the message again to continue."
)


def recover_interrupted(*, node: str | None = None) -> int:
    """End leftover CLI process groups of unfinished turns and mark those turns interrupted. ``node``: only
    the turns that engine node took (cluster mode: an engine recovers its own, never another's)."""
    count = 0
    pending = Turn.objects.pending()
    for turn in pending if node is None else pending.filter(node=node):
        if turn.pid and claude.is_process_of(turn.pid, started=turn.pid_started, command=b"claude"):
            claude.kill_group(turn.pid)
        turn.status = Turn.Status.INTERRUPTED
        turn.error = INTERRUPTED_BY_RESTART
        turn.finished_at = timezone.now()
        turn.save()
        permissions.cancel_open(turn)
        Event.objects.filter(turn=turn, complete=False).update(complete=True)
        if node is not None:
            refresh_session_status(turn.session_id)
        count += 1
    if node is None:
        Session.objects.filter(status__in=[Session.Status.RUNNING, Session.Status.QUEUED]).update(
            status=Session.Status.IDLE
        )
    return count
