"""The tasks board, a task's page with its live log, and the buttons' actions (its diff and review: :mod:`.review`).

One way for every view here: async function views, which await the services (an action reaches
the engine, ``request.engine``, on the server's event loop) and reach the synchronous side (the
selectors' queries, the template, which reads the database as it renders) only through
:func:`_render`, one hop to a thread for the page's context and its template together (and the
New task form's validation, which reads the projects open to the person, in one hop of its own).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from chat import projects
from chat.live import fragments
from chat.services import disk, permissions, turns
from chat.web.views.types import AuthedRequest

from .. import allowances, selectors, services
from ..models import Action, BoardNote, Task
from ..services import feedback
from .forms import TaskForm


async def _render(
    request: AuthedRequest,
    template: str,
    context: Callable[[], dict[str, Any]],
    *,
    status: int = 200,
) -> HttpResponse:
    """The page: ``context`` (which may read the database) and ``template`` rendered in one thread hop."""
    return await sync_to_async(lambda: render(request, template, context(), status=status))()


def _form_context(
    user: User, values: dict[str, Any] | None = None, errors: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "values": values or {},
        "errors": errors or {},
        # By name: the server's folders are not a member's business.
        "projects": [(p.key, p.label) for p in projects.projects_for(user)],
        "skip_permissions_words": allowances.task_may(skip_permissions=True),
        "normal_words": allowances.task_may(skip_permissions=False),
        "max_message_chars": settings.CLAUDE_MAX_MESSAGE_CHARS,
        "root_without_sandbox": services.is_root_without_sandbox(),
    }


def _board_context(request: AuthedRequest) -> dict[str, Any]:
    column = selectors.column_named(request.GET.get("status", ""))
    visible = selectors.visible_tasks(request.user)
    context = {
        **selectors.board_context(tasks=visible, note=BoardNote.read(), user=request.user),
        **_form_context(request.user),
        "column": column,
        "tabs": selectors.COLUMNS,
        "max_tasks": settings.CLAUDE_MAX_TASKS,
    }
    if column is not None:
        context["filtered"] = selectors.in_column(visible, column, user=request.user)
    return context


@login_required
@require_GET
async def board(request: AuthedRequest) -> HttpResponse:
    return await _render(request, "tasks/board.html", lambda: _board_context(request))


@login_required
async def new_task(request: AuthedRequest) -> HttpResponse:
    user = await request.auser()
    assert isinstance(user, User)  # login_required
    if request.method != "POST":
        return await _render(request, "tasks/new.html", lambda: _form_context(user))
    form = TaskForm(request.POST, user=user)
    values: dict[str, object] = {
        name: request.POST.get(name, "") for name in ("prompt", "title", "project", "priority")
    }
    values["yolo"] = request.POST.get("yolo") == "1"
    # The form reads the projects open to this person from the database.
    if not await sync_to_async(form.is_valid)():
        errors = form.errors_by_field()
        return await _render(request, "tasks/new.html", lambda: _form_context(user, values, errors), status=400)
    data = form.cleaned_data
    try:
        task = await services.create_task(
            engine=request.engine,
            user=user,
            prompt=data["prompt"],
            title=data["title"],
            project=data["project"] or "default",
            priority=data["priority"] or 0,
            skip_permissions=data["yolo"],
        )
    except services.TaskRefused as exc:
        refusal = {"__all__": str(exc)}
        return await _render(request, "tasks/new.html", lambda: _form_context(user, values, refusal), status=400)
    except Exception as exc:
        if (full := disk.explain(exc, what="the task")) is None:
            raise
        failed = {"__all__": full}
        return await _render(request, "tasks/new.html", lambda: _form_context(user, values, failed), status=disk.STATUS)
    return redirect(task.get_absolute_url())


@login_required
@require_GET
async def detail(request: AuthedRequest, task_id: int) -> HttpResponse:
    def context() -> dict[str, Any]:
        if not selectors.visible_tasks(request.user).filter(pk=task_id).exists():
            raise Http404("No such task.")
        task = selectors.task_for_page(task_id, user=request.user)
        may_answer = task.session is not None and permissions.may_answer(user=request.user, session=task.session)
        return {
            "task": task,
            "turns": selectors.log_page(task).turns,
            "text": "",
            "level": "",
            "may_answer": may_answer,
        }

    return await _render(request, "tasks/detail.html", context)


@login_required
@require_POST
async def action(request: AuthedRequest, task_id: int, name: str) -> HttpResponse:
    if name not in Action.__members__.values():
        raise Http404("No such action.")
    user = await request.auser()
    try:
        task = await services.get_task(task_id, user=user)
    except services.TaskNotFound:
        raise Http404("No such task.") from None
    message = request.POST.get("message") or None
    try:
        if message is not None:
            turns.validate_message(message)  # a follow-up is a message: the same limits
        task = await services.act(engine=request.engine, user=user, task=task, action=Action(name), message=message)
        text, level = f"Task #{task.pk}: {task.status_text.lower()}.", "info"
        if name == Action.PULL_REQUEST:
            text = (
                f"Task #{task.pk}: pull request {task.pr_label} is {task.get_pr_state_display().lower()}: {task.pr_url}"
            )
    except (services.TaskRefused, turns.TurnRefused) as exc:
        text, level = str(exc), "error"
    return _answer(request, task, text, level)


def _answer(request: AuthedRequest, task: Task, text: str, level: str) -> HttpResponse:
    """A button's answer: a flash message (htmx), or the task's page with it."""
    if request.htmx:
        return HttpResponse(fragments.flash(text, level=level))
    (messages.info if level == "info" else messages.error)(request, text)
    return redirect(task.get_absolute_url())


@login_required
@require_POST
async def refresh_pull_request(request: AuthedRequest, task_id: int) -> HttpResponse:
    """Ask the forge for the state of the task's pull request and its feedback: its Refresh button (always), and
    the task's page once it is opened (``quiet``: not within seconds of the last time, and no
    message unless it fails). Anyone who may see the task may ask."""
    try:
        task = await services.get_task(task_id, user=await request.auser())
    except services.TaskNotFound:
        raise Http404("No such task.") from None
    quiet = request.POST.get("quiet") == "1"
    try:
        task = await feedback.refresh(engine=request.engine, task_id=task.pk, force=not quiet)
    except services.TaskRefused as exc:
        return _answer(request, task, str(exc), "error")
    if quiet and request.htmx:
        return HttpResponse(status=204)
    text = (
        f"Pull request {task.pr_label}: {task.get_pr_state_display().lower()}."
        if task.pr_number
        else "No pull request yet."
    )
    return _answer(request, task, text, "info")


@login_required
@require_POST
async def send_feedback(request: AuthedRequest, task_id: int) -> HttpResponse:
    """ "Send to the agent": the new review comments and failed checks of the task's pull request as
    one follow-up (its creator and staff)."""
    user = await request.auser()
    try:
        task = await services.get_task(task_id, user=user)
    except services.TaskNotFound:
        raise Http404("No such task.") from None
    try:
        task, count = await feedback.send_feedback(
            engine=request.engine, user=user, task_id=task.pk, note=request.POST.get("note", "")
        )
    except (services.TaskRefused, turns.TurnRefused) as exc:
        return _answer(request, task, str(exc), "error")
    text = f"Sent {count} item{'s' if count != 1 else ''} of feedback on {task.pr_label} to the agent in one follow-up."
    return _answer(request, task, text, "info")
