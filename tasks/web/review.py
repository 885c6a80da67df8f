"""A task's diff as the review page shows it, and its review: comments on lines, "Send review".

The diff answers htmx's requests into the task page's ``#task-diff``; the view picked (unified or
side by side) is kept in the person's session, so the diff the page reloads when the task changes
keeps it. Comments are placed under the line they end on, where the diff still shows it; others
are listed with their file.
"""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.template.loader import render_to_string
from django.views.decorators.http import require_GET, require_POST

from chat.live import fragments
from chat.services import turns
from chat.web.views.types import AuthedRequest

from .. import services
from ..diffs import FileDiff, Pair, Row, parse_patch
from ..models import ReviewComment, Task, may_act
from ..services import review
from .diff_rows import ReviewFile, Shown, rows_html

VIEWS = ("unified", "split")


def _covered(comments: list[ReviewComment], side: str, number: int | None) -> bool:
    return number is not None and any(c.side == side and c.start_line <= number <= c.end_line for c in comments)


def _review_file(file: FileDiff, index: int, comments: list[ReviewComment], *, split: bool) -> ReviewFile:
    placed: set[int] = set()
    shown: list[Shown] = []
    rows: list[Row | Pair] = list(file.pairs()) if split else list(file.rows)
    for row in rows:
        olds = [row] if isinstance(row, Row) else [row.left] if row.left else []
        news = [row] if isinstance(row, Row) else [row.right] if row.right else []
        ending = [
            c
            for c in comments
            if c.pk not in placed
            and any((r.old if c.side == "old" else r.new) == c.end_line for r in (olds if c.side == "old" else news))
        ]
        placed.update(c.pk for c in ending)
        sides = [s for s, rs in (("old", olds), ("new", news)) if any(_covered(comments, s, getattr(r, s)) for r in rs)]
        shown.append(Shown(row=row, comments=ending, commented=" ".join(sides)))
    return ReviewFile(file=file, index=index, shown=shown, elsewhere=[c for c in comments if c.pk not in placed])


def _view_of(request: AuthedRequest) -> str:
    asked = request.GET.get("view") or request.POST.get("view") or ""
    if asked in VIEWS:
        request.session["diff_view"] = asked
        return asked
    kept = request.session.get("diff_view")
    return kept if kept in VIEWS else "unified"


async def render_diff(
    request: AuthedRequest, task: Task, *, error: str = "", notice: str = "", flash: bool = False
) -> HttpResponse:
    """The task's diff (``#task-diff``) for the person asking, with the review's comments and forms.
    ``flash``: say the notice in the page's flash as well, which outlives the diff's next reload
    (sending a review changes the task, and the page reloads its diff at once)."""
    view = await sync_to_async(_view_of)(request)
    text = ""
    if not error:
        try:
            text = await services.diff(task_id=task.pk)
        except services.TaskRefused as exc:
            error = str(exc)
    patch = parse_patch(text)
    comments = await review.comments_of(task)
    by_file: dict[str, list[ReviewComment]] = {}
    for comment in comments:
        by_file.setdefault(comment.path, []).append(comment)
    files = [_review_file(f, i, by_file.get(f.path, []), split=view == "split") for i, f in enumerate(patch.files, 1)]
    shown_paths = {f.path for f in patch.files}
    user = await request.auser()
    may_review = await sync_to_async(may_act)(user, task)
    comment_context = {"task": task, "may_review": may_review, "user_id": user.pk, "is_staff": user.is_staff}

    def comment_html(comment: ReviewComment) -> str:
        return render_to_string("tasks/diff.html#comment", {**comment_context, "comment": comment})

    def rows() -> None:
        for item in files:
            item.html = rows_html(item, split=view == "split", may_review=may_review, comment=comment_html)

    await sync_to_async(rows)()
    context = {
        "patch": patch,
        "files": files,
        "task": task,
        "error": error,
        "notice": notice,
        "view": view,
        **comment_context,
        "drafts": [c for c in comments if c.is_draft],
        # Comments on files this diff no longer shows (the file's changes were undone, say).
        "gone": [c for c in comments if c.path not in shown_paths],
    }
    html: str = await sync_to_async(render_to_string)("tasks/diff.html", context, request)
    return HttpResponse(html + fragments.flash(notice, level="info") if flash and notice else html)


async def _task(request: AuthedRequest, task_id: int) -> Task:
    try:
        return await services.get_task(task_id, user=await request.auser())
    except services.TaskNotFound:
        raise Http404("No such task.") from None


@login_required
@require_GET
async def diff(request: AuthedRequest, task_id: int) -> HttpResponse:
    return await render_diff(request, await _task(request, task_id))


def _line(value: str | None) -> int:
    try:
        number = int(value or "")
    except ValueError:
        return 0
    return number if number > 0 else 0


@login_required
@require_POST
async def add_comment(request: AuthedRequest, task_id: int) -> HttpResponse:
    task = await _task(request, task_id)
    start, end = _line(request.POST.get("start")), _line(request.POST.get("end"))
    if not start or not end:
        return await render_diff(request, task, notice="Click a line number in the diff to pick the lines first.")
    try:
        comment = await review.add_comment(
            user=await request.auser(),
            task_id=task.pk,
            path=request.POST.get("path", ""),
            side=request.POST.get("side", ""),
            start_line=start,
            end_line=end,
            text=request.POST.get("text", ""),
        )
    except services.TaskRefused as exc:
        return await render_diff(request, task, notice=str(exc))
    return await render_diff(
        request,
        task,
        notice=f"Comment on {comment.path}, {comment.lines_label} kept as a draft: send the review when done.",
    )


@login_required
@require_POST
async def delete_comment(request: AuthedRequest, task_id: int, comment_id: int) -> HttpResponse:
    task = await _task(request, task_id)
    try:
        await review.delete_comment(user=await request.auser(), task_id=task.pk, comment_id=comment_id)
    except services.TaskRefused as exc:
        return await render_diff(request, task, notice=str(exc))
    return await render_diff(request, task, notice="Draft comment removed.")


@login_required
@require_POST
async def send_review(request: AuthedRequest, task_id: int) -> HttpResponse:
    task = await _task(request, task_id)
    note = request.POST.get("note", "")
    try:
        task, count = await review.send_review(
            engine=request.engine, user=await request.auser(), task_id=task.pk, note=note
        )
    except (services.TaskRefused, turns.TurnRefused) as exc:
        return await render_diff(request, task, notice=str(exc))
    return await render_diff(
        request,
        task,
        notice=f"Review sent: {count} comment{'s' if count != 1 else ''} in one follow-up. "
        "When its run ends, the diff marks the comments whose lines it changed.",
        flash=True,
    )
