"""Which sent review comments the run after them addressed: the run's own changes, measured from
the commit the review was sent on, touch the comment's lines (see :mod:`.review`)."""

from __future__ import annotations

from chat.models import Turn
from drivers import git

from .. import live
from ..diffs import FileDiff, parse_patch
from ..models import ReviewComment, Task
from .places import repo_of


async def check_addressed(*, task: Task, turn: Turn) -> None:
    """After ``turn`` (a run of ``task``) ended and its changes were committed: mark the sent
    comments waiting for a run as checked in it, and those whose lines it changed as addressed."""
    waiting = [c async for c in ReviewComment.objects.filter(task=task, sent_at__isnull=False, checked_in__isnull=True)]
    if not waiting:
        return
    patches: dict[str, dict[str, FileDiff]] = {}
    addressed: list[int] = []
    for comment in waiting:
        if comment.sent_head not in patches:
            # A file rewritten with other line endings (a browser's form sends CRLF) changed no line.
            text = (
                await git.diff(repo_of(task), comment.sent_head, task.branch, ignore_line_endings=True)
                if comment.sent_head
                else ""
            )
            patches[comment.sent_head] = {f.path: f for f in parse_patch(text).files}
        file = patches[comment.sent_head].get(comment.path)
        if file is not None and _touches(file, comment):
            addressed.append(comment.pk)
    ids = [c.pk for c in waiting]
    await ReviewComment.objects.filter(pk__in=ids).aupdate(checked_in=turn)
    await ReviewComment.objects.filter(pk__in=addressed).aupdate(addressed_in=turn)
    await live.task_changed(task.pk)


def _touches(file: FileDiff, comment: ReviewComment) -> bool:
    """Whether the run's diff changed the comment's lines. Lines of the new side are numbered as in
    the commit the review was sent on; lines of the old side are the base's, which that commit no
    longer numbers the same: any change to the file counts for them."""
    if comment.side == ReviewComment.Side.OLD:
        return bool(file.added or file.removed)
    lines = range(comment.start_line, comment.end_line + 1)
    return any(line in lines for line in file.changed_old_lines())
