"""What the tasks API answers about a task: its schema and how a task becomes one (its pull
request, its latest check, its pull request's feedback), apart from the routes in :mod:`api.tasks`."""

from __future__ import annotations

from typing import Literal, TypedDict

from asgiref.sync import sync_to_async
from ninja import Schema
from pydantic import Field

from tasks.models import Action, PullFeedback, Task
from tasks.selectors import with_latest_checks

from .schemas import IsoTime

LISTED = 500


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


async def with_check(task: Task) -> Task:
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
