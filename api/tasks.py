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
from typing import Annotated, Any, Literal, TypedDict

from asgiref.sync import sync_to_async
from ninja import Path, Query, Router, Schema, Status
from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, StringConstraints

from chat import projects
from tasks import services
from tasks.models import Action, PullFeedback, Task
from tasks.selectors import visible_tasks, with_latest_checks

from .errors import ApiRequest
from .schemas import Error, FieldErrors, FromSettings, IsoTime, LimitedText, Refusal, Request, StorableText, refused

router = Router(tags=["tasks"])
log = logging.getLogger(__name__)

LISTED = 500
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


Conflicts = TypedDict("Conflicts", {"with": int | None, "files": list[str]})


class Tokens(TypedDict):
    input: int
    output: int
    total: int


class PullRequest(Schema):
    forge: Literal["github", "gitlab"]
    repository: str = Field(description="owner/repo on GitHub, group/project on GitLab.")
    number: int = Field(description="GitHub's pull request number, GitLab's merge request iid.")
    url: str
    state: Literal["open", "merged", "closed"] = Field(description="As the forge said when last asked (checked_at).")
    checked_at: IsoTime | None


class CheckResult(Schema):
    kind: Literal["setup", "check"] = Field(description="The project's setup command, or its check command.")
    run: int = Field(description="The task's run it followed (a setup: the run it came before), 1 for the first.")
    passed: bool
    result: Literal["passed", "failed", "timed out", "could not run"]
    exit_code: int | None = Field(description="null: it was ended when its time was up.")
    sent_back: bool = Field(description="Its failure went back to the agent as a follow-up.")
    finished_at: IsoTime
    output: str | None = Field(
        description="The end of its output (the last 64 KB); in one task's answer, null in the list."
    )


class Feedback(Schema):
    id: int
    forge_id: str = Field(
        description="The comment's, review's, check run's, status's, note's or job's id on the forge."
    )
    kind: Literal["comment", "check"]
    author: str = Field(description="Who wrote a comment; for a check, the app or CI that ran it.")
    name: str = Field(description="A check's name (empty for a comment).")
    path: str = Field(description="The file a line comment is on (empty otherwise).")
    line: int | None
    body: str = Field(description="The forge's text, as written there (untrusted).")
    url: str = Field(description="Its page on the forge (only http(s) addresses; may be empty).")
    state: Literal["new", "sent", "answered"] = Field(
        description="new: not sent to the agent yet; sent: sent, its run not pushed yet; answered: the run after "
        "it was pushed to the pull request."
    )
    fetched_at: IsoTime
    sent_at: IsoTime | None


class TaskResponse(Schema):
    id: int
    title: str
    prompt: str
    status: Task.Status
    reason: str = Field(description="Why a paused task waits (empty when it does not).")
    status_text: str
    project: str
    base_branch: str
    priority: int
    yolo: bool
    branch: str
    worktree: str
    session_id: str | None
    files_changed: list[str]
    conflicts: Conflicts | None = Field(description="The task that holds files this one changes, and which files.")
    error: str
    tokens: Tokens
    cost_usd: float
    created_at: IsoTime
    started_at: IsoTime | None
    finished_at: IsoTime | None
    merged_at: IsoTime | None
    url: str = Field(description="The task's page.")
    pull_request: PullRequest | None = Field(
        description="The task's pull request (GitLab: merge request), once opened."
    )
    check: CheckResult | None = Field(
        description="The latest run of its project's setup or check command (null: none ran)."
    )
    pull_request_feedback: list[Feedback] | None = Field(
        default=None,
        description="Its pull request's review comments and failed checks still reported by the forge; only "
        "in the answer of one task (null in the list).",
    )
    actions: list[Action] = Field(
        description="What the task's state allows now (its creator or an admin may do it); "
        "'pull-request' only in a project with a remote and forge."
    )


class TaskList(Schema):
    tasks: list[TaskResponse] = Field(description=f"Newest first, at most {LISTED}.")


def task_response(task: Task, feedback: list[PullFeedback] | None = None) -> TaskResponse:
    conflicts: Conflicts | None = None
    if task.conflict_files or task.conflict_with_id:
        conflicts = {"with": task.conflict_with_id, "files": task.conflict_files}
    return TaskResponse(
        id=task.pk,
        title=task.title,
        prompt=task.prompt,
        status=Task.Status(task.status),
        reason=task.reason,
        status_text=task.status_text,
        project=task.project,
        base_branch=task.base_branch,
        priority=task.priority,
        yolo=task.skip_permissions,
        branch=task.branch,
        worktree=task.worktree_path,
        session_id=str(task.session_id) if task.session_id else None,
        files_changed=task.files_changed,
        conflicts=conflicts,
        error=task.error,
        tokens={"input": task.input_tokens, "output": task.output_tokens, "total": task.tokens},
        cost_usd=task.cost_usd,
        created_at=task.created_at,
        started_at=task.started_at,
        finished_at=task.finished_at,
        merged_at=task.merged_at,
        url=task.get_absolute_url(),
        pull_request=pull_request_of(task),
        check=check_of(task),
        pull_request_feedback=None
        if feedback is None
        else [
            Feedback.model_validate(
                {
                    name: getattr(item, name)
                    for name in ("id", "forge_id", "kind", "author", "name", "path", "line", "body", "url", "state")
                }
                | {"fetched_at": item.fetched_at, "sent_at": item.sent_at}
            )
            for item in feedback
        ],
        actions=sorted(task.actions),
    )


def check_of(task: Task) -> CheckResult | None:
    """The task's latest setup or check, as read by :func:`tasks.selectors.with_latest_checks`."""
    run = task.latest_check
    if run is None:
        return None
    return CheckResult.model_validate(
        {
            "kind": run.kind,
            "run": run.run_number,
            "passed": run.passed,
            "result": run.result,
            "exit_code": run.exit_code,
            "sent_back": run.sent_back,
            "finished_at": run.finished_at,
            "output": None if "output" in run.get_deferred_fields() else run.output,
        }
    )


async def _with_check(task: Task) -> Task:
    await sync_to_async(with_latest_checks)([task], output=True)
    return task


def pull_request_of(task: Task) -> PullRequest | None:
    if task.pr_number is None or task.pr_forge not in ("github", "gitlab") or not task.pr_state:
        return None
    return PullRequest.model_validate(
        {
            "forge": task.pr_forge,
            "repository": task.pr_repository,
            "number": task.pr_number,
            "url": task.pr_url,
            "state": task.pr_state,
            "checked_at": task.pr_checked_at,
        }
    )


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
    return Status(201, task_response(await _with_check(task)))


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
    return task_response(await _with_check(task), await _feedback_of(task))


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
    return task_response(await _with_check(task), await _feedback_of(task))


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
    return task_response(await _with_check(done))
