"""Reviewing a task's diff: comments on lines, kept as drafts, sent as ONE follow-up, then checked.

A comment points at lines of one file of the diff as it stands (``side`` "new": the branch's
numbering; "old": the base's, for removed lines). "Send review" puts every draft into one message
and hands it to :func:`.control.act` as Resume's follow-up, so it runs as any follow-up does. The
branch's commit at that moment is kept with each comment; when the run that follows has ended and
its changes are committed, :func:`check_addressed` diffs that commit against the branch and marks
the comments whose lines the run changed.
"""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import transaction
from django.utils import timezone

from chat.models import Turn
from chat.services import turns
from drivers import git
from runtime import Engine

from ..diffs import FileDiff, Patch, parse_patch
from ..models import Action, ReviewComment, Task
from .common import NotAllowed, TaskRefused, get_task, require_may_act
from .control import act, diff
from .places import repo_of

# The most lines one comment may span, and quote to the agent.
MAX_COMMENT_LINES = 200


async def add_comment(
    *,
    user: AbstractBaseUser | AnonymousUser,
    task_id: int,
    path: str,
    side: str,
    start_line: int,
    end_line: int,
    text: str,
) -> ReviewComment:
    """A draft comment on lines ``start_line``..``end_line`` of ``path`` as the diff shows them now."""
    task = await get_task(task_id, user=user)
    await _require_reviewer(user, task)
    if not isinstance(text, str) or not text.strip():
        raise TaskRefused("Type the comment first, then press Add comment.")
    try:
        text = turns.validate_message(text).strip()
    except turns.TurnRefused as exc:
        raise TaskRefused(f"The comment was not saved: {exc}") from None
    if side not in ReviewComment.Side.values:
        raise TaskRefused("Pick the lines to comment on by their numbers in the diff (old or new side).")
    start, end = sorted((int(start_line), int(end_line)))
    if end - start >= MAX_COMMENT_LINES:
        raise TaskRefused(f"A comment covers at most {MAX_COMMENT_LINES} lines; pick a shorter range.")
    file = _file(parse_patch(await diff(task_id=task.pk)), path)
    if file is None:
        raise TaskRefused(f"{path} is not among the files this task changed: reload the diff and pick a line again.")
    shown = [file.row_at(side, number) for number in range(start, end + 1)]
    if shown[0] is None or shown[-1] is None:
        raise TaskRefused(
            f"Line {start if shown[0] is None else end} of {path} ({side} version) is not in the diff any more: "
            "reload it and pick the lines again."
        )
    excerpt = "\n".join(row.body for row in shown if row is not None)
    made_on = await _latest_turn(task)
    return await ReviewComment.objects.acreate(
        task=task,
        author_id=user.pk,
        path=file.path,
        side=side,
        start_line=start,
        end_line=end,
        text=text,
        excerpt=excerpt,
        made_on_id=made_on,
    )


async def delete_comment(*, user: AbstractBaseUser | AnonymousUser, task_id: int, comment_id: int) -> None:
    """Remove a draft (its author's, or any for staff); a sent comment is part of the task's history."""
    task = await get_task(task_id, user=user)
    comment = await ReviewComment.objects.filter(task=task, pk=comment_id).afirst()
    if comment is None:
        raise TaskRefused("That comment is gone already: reload the diff.")
    if not comment.is_draft:
        raise TaskRefused("This comment was sent with a review and stays with the task.")
    if comment.author_id != user.pk and not getattr(user, "is_staff", False):
        raise NotAllowed("Only the comment's author (or an admin) can remove it.")
    await comment.adelete()


def review_message(comments: list[ReviewComment], note: str = "") -> str:
    """The follow-up the agent reads: the reviewer's note, then each comment with its file, lines
    and the lines it is about."""
    count = f"{len(comments)} comment{'s' if len(comments) != 1 else ''}"
    parts = [note.strip()] if note.strip() else []
    parts.append(f"Review of your changes ({count}). Address each one in the files, then say what you changed.")
    for number, comment in enumerate(comments, 1):
        where = f"{comment.path}, {comment.lines_label}"
        if comment.side == ReviewComment.Side.OLD:
            where += " of the original version (lines your changes removed)"
        quoted = "\n".join(f"    > {line}" for line in comment.excerpt.splitlines())
        parts.append(
            f"{number}. {where}:\n{quoted}\n    {comment.text}" if quoted else f"{number}. {where}:\n    {comment.text}"
        )
    return "\n\n".join(parts)


async def send_review(
    *, engine: Engine, user: AbstractBaseUser | AnonymousUser, task_id: int, note: str = ""
) -> tuple[Task, int]:
    """Send every draft comment of the task as one follow-up (Resume's); returns the task and how many."""
    task = await get_task(task_id, user=user)
    await _require_reviewer(user, task)
    drafts = [
        c
        async for c in ReviewComment.objects.filter(task=task, sent_at__isnull=True).order_by(
            "path", "start_line", "id"
        )
    ]
    if not drafts:
        raise TaskRefused("There is no draft comment to send: click a line number in the diff to comment on it first.")
    if Action.RESUME not in task.actions:
        raise TaskRefused(
            f"Task #{task.pk} is {task.status_text.lower()}: a review is sent as a follow-up, which it cannot take now. "
            "Your comments stay as drafts."
        )
    message = review_message(drafts, note)
    try:
        turns.validate_message(message)
    except turns.TurnRefused as exc:
        raise TaskRefused(f"The review is too long to send as one message: {exc}") from None
    head = await git.rev(repo_of(task), task.branch) if task.branch else ""
    ids = [c.pk for c in drafts]
    # Marked sent before the run is queued: a run that ends at once still finds them to check.
    await _mark_sent(ids, head)
    try:
        task = await act(engine=engine, user=user, task=task, action=Action.RESUME, message=message)
    except BaseException:
        await ReviewComment.objects.filter(pk__in=ids).aupdate(sent_at=None, sent_head="")
        raise
    return task, len(ids)


@sync_to_async
def _mark_sent(ids: list[int], head: str) -> None:
    with transaction.atomic():
        ReviewComment.objects.filter(pk__in=ids).update(sent_at=timezone.now(), sent_head=head)


def _file(patch: Patch, path: str) -> FileDiff | None:
    return next((f for f in patch.files if f.path == path), None)


async def _latest_turn(task: Task) -> int | None:
    if task.session_id is None:
        return None
    return (
        await Turn.objects.filter(session_id=task.session_id)
        .order_by("-created_at", "-id")
        .values_list("pk", flat=True)
        .afirst()
    )


async def _require_reviewer(user: AbstractBaseUser | AnonymousUser, task: Task) -> None:
    await require_may_act(user, task, "review")


@sync_to_async
def comments_of(task: Task) -> list[ReviewComment]:
    """The task's comments, drafts and sent, with their authors, as the diff shows them."""
    return list(ReviewComment.objects.filter(task=task).select_related("author", "addressed_in", "checked_in"))
