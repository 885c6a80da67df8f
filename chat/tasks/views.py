"""The tasks board, a task's page with its live log and diff, and the buttons' actions.

Async function views: an action must reach the scheduler of the server's event loop.
"""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.views.decorators.http import require_GET, require_POST

from . import services
from .board import board_context, log_context
from .models import Task
from .scheduler import get_scheduler

ACTIONS = ("pause", "resume", "terminate", "merge", "discard")


def _can_act(user, task: Task) -> bool:
    """Everyone on the team sees every task; its creator and staff act on it."""
    return user.is_staff or task.created_by_id == user.pk


@sync_to_async
def _user(request: HttpRequest):
    return request.user


def _form_context(values: dict | None = None, errors: dict | None = None) -> dict:
    return {"values": values or {}, "errors": errors or {}, "projects": sorted(services.projects().items()),
            "allowed_tools": settings.CLAUDE_TASK_ALLOWED_TOOLS, "max_message_chars": settings.CLAUDE_MAX_MESSAGE_CHARS,
            "root_without_sandbox": services.is_root_without_sandbox()}


def _board_page(request: HttpRequest, note: str, extra: dict) -> HttpResponse:
    status = request.GET.get("status", "")
    if status not in Task.Status.values:
        status = ""
    context = {**board_context(note), **_form_context(), **extra, "status_filter": status,
               "statuses": Task.Status.choices, "max_tasks": settings.CLAUDE_MAX_TASKS}
    if status:
        context["filtered"] = list(Task.objects.filter(status=status).order_by("-priority", "-created_at")[:300])
    return render(request, "tasks/board.html", context)


@login_required
@require_GET
async def board(request: HttpRequest) -> HttpResponse:
    note = get_scheduler().note  # also starts queued tasks after a restart
    return await sync_to_async(_board_page)(request, note, {})


@login_required
async def new_task(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return await sync_to_async(render)(request, "tasks/new.html", _form_context())
    user = await _user(request)
    data = request.POST
    values = {"prompt": data.get("prompt", ""), "title": data.get("title", ""), "project": data.get("project") or None,
              "priority": data.get("priority") or "0", "yolo": data.get("yolo") == "1"}
    try:
        task = await services.create_task(user=user, prompt=values["prompt"], title=values["title"] or None,
                                          project=values["project"], priority=values["priority"], yolo=values["yolo"])
    except services.InvalidTask as exc:
        return await sync_to_async(render)(request, "tasks/new.html", _form_context(values, exc.errors), status=400)
    except services.TaskRefused as exc:
        return await sync_to_async(render)(request, "tasks/new.html", _form_context(values, {"__all__": str(exc)}), status=400)
    return redirect(task.get_absolute_url())


@login_required
@require_GET
async def detail(request: HttpRequest, task_id: int) -> HttpResponse:
    get_scheduler()
    try:
        task = await services.get_task(task_id)
    except services.TaskNotFound:
        raise Http404("No such task.") from None

    def page() -> HttpResponse:
        return render(request, "tasks/detail.html", {"task": task, "turns": log_context(task), "text": "", "level": ""})

    return await sync_to_async(page)()


@login_required
@require_GET
async def diff(request: HttpRequest, task_id: int) -> HttpResponse:
    try:
        text = await services.diff(task_id=task_id)
    except services.TaskNotFound:
        raise Http404("No such task.") from None
    if not text:
        return HttpResponse('<p class="hint">No changes against the base branch (or the branch is gone).</p>')
    return HttpResponse(render_to_string("tasks/diff.html", {"diff": text}))


def _flash(text: str, level: str = "error") -> str:
    return render_to_string("tasks/board.html#flash", {"text": text, "level": level, "oob": True})


@login_required
@require_POST
async def action(request: HttpRequest, task_id: int, name: str) -> HttpResponse:
    if name not in ACTIONS:
        raise Http404("No such action.")
    user = await _user(request)
    try:
        task = await services.get_task(task_id)
    except services.TaskNotFound:
        raise Http404("No such task.") from None
    try:
        if not await sync_to_async(_can_act)(user, task):
            raise services.TaskRefused(f"Only the person who created task #{task.pk} (or an admin) can {name} it.")
        if name == "resume":
            task = await services.resume(task_id=task.pk, message=request.POST.get("message") or None)
        else:
            task = await getattr(services, name)(task_id=task.pk)
        text, level = f"Task #{task.pk}: {task.status_text.lower()}.", "info"
    except services.TaskRefused as exc:
        text, level = str(exc), "error"
    if request.htmx:
        return HttpResponse(_flash(text, level))
    (messages.info if level == "info" else messages.error)(request, text)
    return redirect(task.get_absolute_url())
