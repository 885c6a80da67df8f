"""The tasks API for scripts and CI jobs, with the chat API's bearer-token auth.

``POST /api/tasks`` ``{"prompt", "title"?, "project"?, "priority"?, "yolo"?}`` → 201;
``GET /api/tasks`` (``?status=`` filters), ``GET /api/tasks/{task_id}``;
``POST /api/tasks/{task_id}/pause|resume|terminate|merge|discard|pull-request`` (resume takes
``{"message"?}``); ``POST /api/tasks/{task_id}/pull-request/feedback`` (``{"note"?}``) sends the new
review comments and failed checks to the agent. Reading one task asks the forge for its pull
request's state and feedback, as its page does.
Bad input answers ``{"error": "...", "fields": {name: reason}}``; what the services refuse is
mapped to a status by :mod:`api.errors`.
"""

from __future__ import annotations

import logging
import re
from typing import Annotated, Any

from asgiref.sync import sync_to_async
from ninja import Path, Query, Router, Status
from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, StringConstraints

from chat import projects
from tasks import services
from tasks.models import Action, PullFeedback, Task
from tasks.selectors import visible_tasks, with_latest_checks

from .errors import ApiRequest
from .schemas import Error, FieldErrors, FromSettings, LimitedText, Refusal, Request, StorableText, refused
from .task_answers import LISTED, TaskList, TaskResponse, task_response, with_check

router = Router(tags=["tasks"])
log = logging.getLogger(__name__)

LOW, HIGH = services.PRIORITY_RANGE


# ---------------------------------------------------------------------------------------
# Schemas


def _unknown_project(name: Any) -> str:
    shown = repr(name[:64]) if isinstance(name, str) else f"of type {type(name).__name__}"
    return f"Unknown project {shown}; known: {', '.join(projects.known_keys())}."


def _known_project(name: str) -> str:
    if name not in projects.known_keys():
        raise refused(_unknown_project(name))
    return name


def _numeric_text(value: Any) -> Any:
    """A whole number sent as text ("2") counts as that number, as it always has."""
    return int(value) if isinstance(value, str) and re.fullmatch(r"\s*-?\d{1,9}\s*", value) else value


class TaskRequest(Request):
    model_config = ConfigDict(extra="forbid")
    fields_in_errors = True

    prompt: Annotated[
        LimitedText,
        Refusal("Say what the task should do."),
        Field(description="What the task should do (at most CLAUDE_MAX_MESSAGE_CHARS characters)."),
    ]
    title: Annotated[
        Annotated[StorableText, StringConstraints(max_length=services.TITLE_LENGTH)] | None,
        Refusal(f"The title must be text of at most {services.TITLE_LENGTH} characters."),
        Field(description="Left out: the prompt's first words."),
    ] = None
    project: Annotated[
        Annotated[str, AfterValidator(_known_project), FromSettings(lambda: {"enum": projects.known_keys()})] | None,
        Refusal(_unknown_project),
        Field(description="One of CLAUDE_PROJECTS; left out: 'default' (CLAUDE_WORKDIR)."),
    ] = None
    priority: Annotated[
        int,
        Field(strict=True, ge=LOW, le=HIGH, description='Higher runs first; a number in a string ("2") is taken too.'),
        BeforeValidator(_numeric_text),
        Refusal(f"The priority must be a whole number from {LOW} to {HIGH} (higher runs first)."),
    ] = 0
    yolo: Annotated[
        bool,
        Refusal("yolo must be true or false."),
        Field(
            strict=True,
            description="Skip-permissions mode (--dangerously-skip-permissions): the agent runs any "
            "command without asking. Only where that is acceptable.",
        ),
    ] = False


class FollowUp(Request):
    model_config = ConfigDict(extra="forbid")
    fields_in_errors = True

    message: Annotated[
        LimitedText | None,
        Refusal("message must be text: what the task should do next."),
        Field(description="Resume only: a follow-up instruction (a completed task needs one)."),
    ] = None


class TaskFilter(Request):
    fields_in_errors = True

    status: Annotated[
        Task.Status | None,
        Refusal(lambda value: f"Unknown status {str(value)[:32]!r}; one of {', '.join(Task.Status.values)}."),
    ] = None


class TaskPath(Request):
    task_id: Annotated[int, Field(ge=1, le=2**63 - 1), Refusal(lambda value: f"There is no task {value}.", status=404)]


class ActionPath(TaskPath):
    action: Annotated[
        Action, Refusal(lambda value: f"Unknown action {str(value)[:32]!r}; one of {', '.join(Action)}.", status=404)
    ]


# ---------------------------------------------------------------------------------------
# Operations

UNAUTHORIZED = {401: Error, 405: Error, 500: Error}
# What an action on a task answers (a follow-up's text is checked as a message is).
ACTED = {200: TaskResponse, 400: FieldErrors, 403: Error, 404: Error, 409: Error, 413: FieldErrors, **UNAUTHORIZED}


@router.get(
    "/tasks",
    url_name="tasks",
    operation_id="listTasks",
    summary="List tasks, newest first",
    description="One snapshot of one instant: to count running tasks, read this list (`?status=running`), "
    "not several `GET /api/tasks/{id}`, which are read at different instants (a task that "
    "just finished and the one that took its place can then both show `running`).",
    response={200: TaskList, 400: FieldErrors, **UNAUTHORIZED},
)
async def list_tasks(request: ApiRequest, filters: Query[TaskFilter]) -> TaskList:
    visible = await sync_to_async(visible_tasks)(request.auth)
    query = visible if filters.status is None else visible.filter(status=filters.status)

    def read() -> list[Task]:
        found = list(query.order_by("-created_at", "-id")[:LISTED])
        with_latest_checks(found)
        return found

    found = await sync_to_async(read)()
    return TaskList(tasks=[task_response(task) for task in found])


@router.post(
    "/tasks",
    url_name="create-task",
    operation_id="createTask",
    summary="Start a task",
    description="Queues a task in its own git worktree and branch; it starts when there is room. "
    "Unknown fields are refused.",
    response={201: TaskResponse, 400: FieldErrors, 403: Error, 409: Error, 413: FieldErrors, **UNAUTHORIZED},
)
async def create_task(request: ApiRequest, body: TaskRequest) -> Status[TaskResponse]:
    task = await services.create_task(
        engine=request.engine,
        user=request.auth,
        prompt=body.prompt,
        title=body.title or "",
        project=body.project or "default",
        priority=body.priority,
        skip_permissions=body.yolo,
    )
    return Status(201, task_response(await with_check(task)))


@router.get(
    "/tasks/{int:task_id}",
    url_name="task",
    operation_id="getTask",
    summary="One task",
    description="If the task has a pull request, its state is first asked of the forge (at most every few "
    "seconds), as opening the task's page does; if the forge cannot be asked, the last known state "
    "is answered (see pull_request.checked_at).",
    response={200: TaskResponse, 404: Error, **UNAUTHORIZED},
)
async def get_task(request: ApiRequest, path: Path[TaskPath]) -> TaskResponse:
    task = await services.get_task(path.task_id, user=request.auth)
    if task.pr_number is not None:
        try:
            task = await services.refresh_feedback(engine=request.engine, task_id=task.pk)
        except services.TaskRefused as exc:
            log.warning("task %s: %s", task.pk, exc)
    return task_response(await with_check(task), await _feedback_of(task))


async def _feedback_of(task: Task) -> list[PullFeedback]:
    return [
        item
        async for item in PullFeedback.objects.filter(task=task)
        .exclude(state=PullFeedback.State.GONE)
        .order_by("kind", "path", "line", "id")
    ]


class FeedbackNote(Request):
    model_config = ConfigDict(extra="forbid")
    fields_in_errors = True

    note: Annotated[
        LimitedText | None,
        Refusal("note must be text: what the agent reads before the feedback."),
        Field(description="Said to the agent before the feedback (optional)."),
    ] = None


@router.post(
    "/tasks/{int:task_id}/pull-request/feedback",
    url_name="task-feedback-send",
    operation_id="sendPullRequestFeedback",
    summary="Send the pull request's new review comments and failed checks to the agent",
    description="Only the task's creator (or an admin). Every item not sent yet goes in ONE follow-up (as "
    "Resume's message); once that run completes, its commits are pushed to the same pull request. "
    "409: nothing new to send, or the task cannot take a follow-up now (running, merged).",
    response=ACTED,
)
async def send_feedback(request: ApiRequest, path: Path[TaskPath], body: FeedbackNote | None = None) -> TaskResponse:
    task = await services.get_task(path.task_id, user=request.auth)
    task, _count = await services.send_feedback(
        engine=request.engine, user=request.auth, task_id=task.pk, note=(body.note if body else None) or ""
    )
    return task_response(await with_check(task), await _feedback_of(task))


@router.post(
    "/tasks/{int:task_id}/{action}",
    url_name="task-action",
    operation_id="actOnTask",
    summary="Pause, resume, terminate, merge or discard a task, or open its pull request",
    description="Only the task's creator (or an admin) may act on it. `resume` takes an optional "
    '`{"message": "..."}`: a follow-up instruction, which a completed task needs. '
    "`pull-request` (a completed task of a project with a remote) pushes its branch and opens "
    "its pull request, or links the one already open. "
    "409: the task's state does not allow the action, or the push or the forge refused it "
    "(the error says why and what to do).",
    response=ACTED,
)
async def act_on_task(request: ApiRequest, path: Path[ActionPath], body: FollowUp | None = None) -> TaskResponse:
    task = await services.get_task(path.task_id, user=request.auth)
    message = body.message if body else None
    done = await services.act(engine=request.engine, user=request.auth, task=task, action=path.action, message=message)
    return task_response(await with_check(done))
