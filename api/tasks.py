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

from tasks import services
from tasks.models import Action, Task

from .chat import ApiError, api_view

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
    return JsonResponse({"error": str(exc)}, status=409)


@api_view("GET", "POST")
async def tasks(request: HttpRequest, user) -> JsonResponse:
    if request.method == "GET":
        status = request.GET.get("status")
        if status and status not in Task.Status.values:
            raise ApiError(400, f"Unknown status {status[:32]!r}; one of {', '.join(Task.Status.values)}.")
        query = Task.objects.all() if not status else Task.objects.filter(status=status)
        items = await sync_to_async(lambda: [task_json(t) for t in query.order_by("-created_at", "-id")[:500]])()
        return JsonResponse({"tasks": items})
    body = _body(request)
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise ApiError(400, f"Unknown field(s) {', '.join(unknown)}; a task takes {', '.join(sorted(FIELDS))}.")
    errors = _validate(body)
    if errors:
        return JsonResponse({"error": " ".join(errors.values()), "fields": errors}, status=400)
    try:
        task = await services.create_task(user=user, prompt=body["prompt"], title=body.get("title") or "",
                                          project=body.get("project") or "default", priority=int(body.get("priority") or 0),
                                          skip_permissions=bool(body.get("yolo")))
    except services.TaskRefused as exc:
        return _refused(exc)
    return JsonResponse(task_json(task), status=201)


def _validate(body: dict) -> dict[str, str]:
    errors = {}
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        errors["prompt"] = "Say what the task should do."
    priority = body.get("priority")
    if isinstance(priority, str) and priority.strip().lstrip("-").isdigit():
        body["priority"] = int(priority)
    elif priority is not None and (isinstance(priority, bool) or not isinstance(priority, int)):
        errors["priority"] = "The priority must be a whole number (higher runs first)."
    return errors


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
    if name not in Action.__members__.values():
        raise ApiError(404, f"Unknown action {name[:32]!r}; one of {', '.join(Action)}.")
    found = await _task(task_id)
    body = _body(request)
    try:
        done = await services.act(user=user, task=found, action=Action(name), message=body.get("message"))
    except services.NotAllowed as exc:
        raise ApiError(403, str(exc)) from exc
    except services.TaskRefused as exc:
        return _refused(exc)
    return JsonResponse(task_json(done))
