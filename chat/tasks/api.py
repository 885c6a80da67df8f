"""The tasks API for scripts and CI jobs, with the chat API's bearer-token auth.

``POST /api/tasks`` ``{"prompt", "title"?, "project"?, "priority"?, "yolo"?}`` → 201;
``GET /api/tasks`` (``?status=`` filters), ``GET /api/tasks/<id>``;
``POST /api/tasks/<id>/pause|resume|terminate|merge|discard`` (resume takes ``{"message"?}``).
Errors are ``{"error": "...", "fields"?: {...}}`` with a 4xx status.
"""

from __future__ import annotations

import json

from asgiref.sync import sync_to_async
from django.http import HttpRequest, JsonResponse

from ..api import ApiError, api_view
from . import services
from .models import Task
from .scheduler import get_scheduler

FIELDS = {"prompt", "title", "project", "priority", "yolo"}


def task_json(task: Task) -> dict:
    return {
        "id": task.pk, "title": task.title, "prompt": task.prompt, "status": task.status, "reason": task.reason,
        "status_text": task.status_text, "project": task.project, "base_branch": task.base_branch,
        "priority": task.priority, "yolo": task.skip_permissions, "branch": task.branch,
        "worktree": task.worktree_path, "session_id": str(task.session_id) if task.session_id else None,
        "files_changed": task.files_changed,
        "conflicts": {"with": task.conflict_with_id, "files": task.conflict_files} if task.conflict_files or task.conflict_with_id else None,
        "error": task.error,
        "tokens": {"input": task.input_tokens, "output": task.output_tokens, "total": task.tokens},
        "cost_usd": task.cost_usd,
        "created_at": task.created_at.isoformat(),
        "started_at": task.started_at.isoformat() if task.started_at else None,
        "finished_at": task.finished_at.isoformat() if task.finished_at else None,
        "merged_at": task.merged_at.isoformat() if task.merged_at else None,
        "url": task.get_absolute_url(),
    }


def _body(request: HttpRequest) -> dict:
    if not request.body:
        return {}
    try:
        body = json.loads(request.body)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise ApiError(400, "The body must be a JSON object.")
    return body


def _refused(exc: services.TaskRefused) -> JsonResponse:
    payload = {"error": str(exc)}
    if isinstance(exc, services.InvalidTask):
        payload["fields"] = exc.errors
        return JsonResponse(payload, status=400)
    return JsonResponse(payload, status=409)


@api_view("GET", "POST")
async def tasks(request: HttpRequest, user) -> JsonResponse:
    if request.method == "GET":
        status = request.GET.get("status")
        if status and status not in Task.Status.values:
            raise ApiError(400, f"Unknown status {status[:32]!r}; one of {', '.join(Task.Status.values)}.")
        get_scheduler()
        query = Task.objects.all() if not status else Task.objects.filter(status=status)
        items = await sync_to_async(lambda: [task_json(t) for t in query.order_by("-created_at", "-id")[:500]])()
        return JsonResponse({"tasks": items})
    body = _body(request)
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise ApiError(400, f"Unknown field(s) {', '.join(unknown)}; a task takes {', '.join(sorted(FIELDS))}.")
    try:
        task = await services.create_task(user=user, prompt=body.get("prompt"), title=body.get("title"),
                                          project=body.get("project"), priority=body.get("priority"), yolo=body.get("yolo"))
    except services.TaskRefused as exc:
        return _refused(exc)
    return JsonResponse(task_json(task), status=201)


async def _task(task_id: int) -> Task:
    try:
        return await services.get_task(task_id)
    except services.TaskNotFound:
        raise ApiError(404, f"There is no task {task_id}.") from None


@api_view("GET")
async def task(request: HttpRequest, user, task_id: int) -> JsonResponse:
    return JsonResponse(task_json(await _task(task_id)))


@api_view("POST")
async def task_action(request: HttpRequest, user, task_id: int, name: str) -> JsonResponse:
    from .views import ACTIONS, _can_act

    if name not in ACTIONS:
        raise ApiError(404, f"Unknown action {name[:32]!r}; one of {', '.join(ACTIONS)}.")
    found = await _task(task_id)
    if not await sync_to_async(_can_act)(user, found):
        raise ApiError(403, f"Only the person who created task #{found.pk} (or an admin) can {name} it.")
    body = _body(request)
    try:
        if name == "resume":
            done = await services.resume(task_id=found.pk, message=body.get("message"))
        else:
            done = await getattr(services, name)(task_id=found.pk)
    except services.TaskRefused as exc:
        return _refused(exc)
    return JsonResponse(task_json(done))
