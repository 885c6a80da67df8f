"""The hooks the engine's task scheduler calls: which task is next, running it, the token budget, and
the note (why starts are held back), kept in the database where every page reads it."""

from __future__ import annotations

from datetime import timedelta

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db.models import Sum
from django.utils import timezone

from chat.models import Turn
from runtime import Engine, Hold

from .. import live
from ..models import BoardNote, Task, TaskEvent
from .common import TaskNotFound
from .runs import run_task
from .state import TaskFields, TransitionRefused, transition_now

BUDGET_WINDOW_SECONDS = 60.0
CLAIM_LOOKAHEAD = 20


@sync_to_async
def _tokens_in_window(seconds: float) -> tuple[int, float]:
    """Tokens of the turns that finished within the window, and when the oldest leaves it."""
    since = timezone.now() - timedelta(seconds=seconds)
    recent = Turn.objects.filter(finished_at__gte=since)
    totals = recent.aggregate(i=Sum("input_tokens"), o=Sum("output_tokens"))
    oldest = recent.order_by("finished_at").values_list("finished_at", flat=True).first()
    wait = max(1.0, (oldest - since).total_seconds()) if oldest else 1.0
    return (totals["i"] or 0) + (totals["o"] or 0), wait


def claim_next_sync(exclude: set[int]) -> int | None:
    """Mark the next queued task as running (so no second scheduler takes it) and return its id."""
    queued = Task.objects.filter(status=Task.Status.QUEUED).exclude(pk__in=exclude).in_queue_order()
    for task_id in queued.values_list("pk", flat=True)[:CLAIM_LOOKAHEAD]:
        try:
            # Its audit row and announcement come with it (announced once the caller's transaction commits).
            transition_now(task_id=task_id, event=TaskEvent.START, fields=TaskFields(stop_requested=""))
        except (TransitionRefused, TaskNotFound):
            continue  # paused, discarded or taken meanwhile
        return task_id
    return None


class TaskHooks:
    """What the engine's task scheduler needs from the tasks app (see :class:`runtime.TaskHooks`)."""

    async def claim_next(self, exclude: set[int]) -> int | None:
        return await self._claim_next(exclude)

    @staticmethod
    @sync_to_async
    def _claim_next(exclude: set[int]) -> int | None:
        return claim_next_sync(exclude)

    async def run(self, task_id: int, *, engine: Engine) -> None:
        await run_task(engine=engine, task_id=task_id)

    async def hold(self) -> Hold | None:
        budget = settings.CLAUDE_MAX_TOKENS_PER_MINUTE
        if not budget:
            return None
        used, wait = await _tokens_in_window(BUDGET_WINDOW_SECONDS)
        if used < budget:
            return None
        note = ""
        if await Task.objects.filter(status=Task.Status.QUEUED).aexists():
            note = (
                f"Token budget reached: {used:,} tokens in the last minute (limit {budget:,} a minute, "
                f"CLAUDE_MAX_TOKENS_PER_MINUTE). Queued tasks start again in about {wait:.0f} s."
            )
        return Hold(note=note, seconds=wait)

    async def note_changed(self, note: str) -> None:
        # The scheduler tells its note once at start to clear a stale one; reading first keeps
        # that from taking SQLite's write lock (and waiting out a busy writer) when the board
        # already says the same.
        stored = await BoardNote.objects.filter(pk=BoardNote.ONE).values_list("text", flat=True).afirst()
        if (stored or "") == note:
            return
        await BoardNote.objects.aupdate_or_create(pk=BoardNote.ONE, defaults={"text": note})
        await live.board_changed()
