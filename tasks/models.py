"""A task: a prompt the CLI works on by itself in its own git worktree and branch.

Its Claude session is an ordinary chat :class:`~chat.models.Session` whose working directory
is the worktree; each run (the first, a resume, a follow-up) is a :class:`~chat.models.Turn`,
so a task's log is made of the same Events and renders with the same partials as a chat.

What may be done to a task in each state is one table, :data:`ACTIONS`, and who may do it one
rule, :func:`may_act`: the buttons on the pages and the guards of the services both read them.
Opening a pull request also needs a project with a remote (:data:`NEEDS_REMOTE`, :mod:`tasks.remotes`).
"""

from __future__ import annotations

import enum

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import models
from django.urls import reverse
from django.utils import timezone

from chat.models import Session
from drivers import git
from members import roles

from . import remotes


class TaskQuerySet(models.QuerySet["Task"]):
    def in_queue_order(self) -> TaskQuerySet:
        """Higher priority first, then the oldest."""
        return self.order_by("-priority", "queued_at", "id")

    def open(self) -> TaskQuerySet:
        """Tasks whose branch still exists (neither merged nor discarded)."""
        return self.exclude(status__in=Task.CLOSED)


class Action(enum.StrEnum):
    PAUSE = "pause"
    RESUME = "resume"  # also a completed task's follow-up instruction
    TERMINATE = "terminate"
    MERGE = "merge"
    DISCARD = "discard"
    PULL_REQUEST = "pull-request"  # push the branch, open (or update) its pull request on the forge


class Task(models.Model):
    # Not columns: set by the selectors that read the board and a task's page. ``asking``: its run
    # waits for an answer to a permission prompt; ``needs_you``: one the person looking may give.
    asking: bool = False
    needs_you: bool = False
    # Not a column either: whether the person looking may act on the task (:func:`may_act`); the
    # pages show its buttons only then. Set by the selectors; False until one did.
    viewer_may_act: bool = False
    # Nor this: where it works as that person is told ("Your own folder", "ada's folder", a project's key).
    place: str = ""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        PAUSED = "paused", "Paused"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed"
        MERGED = "merged", "Merged"
        CANCELLED = "cancelled", "Cancelled"

    class Reason(models.TextChoices):
        """Why a paused task waits (blank when it does not)."""

        NONE = "", "—"
        USER = "user", "Paused by a person"
        CONFLICT = "conflict", "Waits for another task to be merged"
        ATTENTION = "attention", "Needs attention: the rebase conflicts"
        INTERRUPTED = "interrupted", "Interrupted by a server restart"

    class PullState(models.TextChoices):
        NONE = "", "—"
        OPEN = "open", "Open"
        MERGED = "merged", "Merged"
        CLOSED = "closed", "Closed"

    CLOSED = (Status.MERGED, Status.CANCELLED)
    ACTIVE = (Status.QUEUED, Status.RUNNING)

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="claude_tasks"
    )
    title = models.CharField(max_length=120)
    prompt = models.TextField()
    project = models.CharField(max_length=100)
    repo_path = models.CharField("repository", max_length=1024)
    base_branch = models.CharField(max_length=255)
    priority = models.IntegerField(default=0, db_index=True)
    skip_permissions = models.BooleanField("skip permissions", default=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    reason = models.CharField(max_length=16, choices=Reason.choices, default=Reason.NONE, blank=True)
    error = models.TextField(blank=True)
    # Built from the id only, never from user text.
    worktree_path = models.CharField(max_length=1024, blank=True)
    branch = models.CharField(max_length=255, blank=True)
    session = models.OneToOneField(Session, null=True, blank=True, on_delete=models.SET_NULL, related_name="task")
    # What the next run sends to the CLI (the prompt, a follow-up, a "continue").
    next_prompt = models.TextField(blank=True)
    files_changed = models.JSONField(default=list, blank=True)
    conflict_with = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="blocking")
    conflict_files = models.JSONField(default=list, blank=True)
    input_tokens = models.PositiveBigIntegerField(default=0)
    output_tokens = models.PositiveBigIntegerField(default=0)
    cost_usd = models.FloatField(default=0.0)
    created_at = models.DateTimeField(default=timezone.now)
    queued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    merged_at = models.DateTimeField(null=True, blank=True)
    # The merge commit on the base branch: once the branch is gone, the task's diff is this commit's.
    merge_commit = models.CharField(max_length=64, blank=True)
    # The task's pull request (GitLab: merge request), once one was opened: where it lives, its
    # number there (GitLab's iid), the commit last pushed, and its state when last asked.
    pr_forge = models.CharField("forge", max_length=16, blank=True)
    pr_repository = models.CharField("forge repository", max_length=255, blank=True)
    pr_number = models.PositiveIntegerField("pull request", null=True, blank=True)
    pr_url = models.URLField("pull request URL", max_length=1024, blank=True)
    pr_state = models.CharField(
        "pull request state", max_length=8, choices=PullState.choices, default=PullState.NONE, blank=True
    )
    pr_head = models.CharField("commit pushed", max_length=64, blank=True)
    pr_checked_at = models.DateTimeField("pull request checked", null=True, blank=True)

    objects = TaskQuerySet.as_manager()

    class Meta:
        # The table this model had when it lived in the chat app: moving apps moved no data.
        db_table = "chat_task"
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "-priority", "queued_at"], name="chat_task_status_458dbb_idx")]

    def __str__(self) -> str:
        return f"#{self.pk} {self.title}"

    def get_absolute_url(self) -> str:
        return reverse("tasks:detail", kwargs={"task_id": self.pk})

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def worktree_exists(self) -> bool:
        """Whether the worktree's folder is there: a folder reached from the repository through no
        link (an agent's link to elsewhere is not the worktree)."""
        return bool(self.worktree_path) and git.is_folder_below(self.repo_path, self.worktree_path)

    @property
    def has_worktree(self) -> bool:
        return bool(self.worktree_path) and (self.status not in self.CLOSED or Action.DISCARD in self.actions)

    @property
    def actions(self) -> frozenset[Action]:
        """What may be done to the task now (see :data:`ACTIONS`)."""
        allowed = ACTIONS[Task.Status(self.status)] - BLOCKED_BY_REASON.get(Task.Reason(self.reason), frozenset())
        if self.status == Task.Status.CANCELLED and not self.worktree_exists:
            # Terminating keeps the worktree and branch; once they are gone there is nothing to discard.
            allowed -= {Action.DISCARD}
        if self.changed_nothing:
            allowed -= NEEDS_CHANGES
        if allowed & NEEDS_REMOTE and not self.has_remote:
            allowed -= NEEDS_REMOTE
        return allowed

    @property
    def changed_nothing(self) -> bool:
        """Completed without changing a file (its calls were denied, say): its branch holds nothing to merge."""
        return self.status == Task.Status.COMPLETED and not self.files_changed

    @property
    def has_remote(self) -> bool:
        """The task's project has a remote and forge to open pull requests on."""
        return remotes.has_remote(self.project, self.repo_path)

    # The templates read these names.
    @property
    def can_pause(self) -> bool:
        return Action.PAUSE in self.actions

    @property
    def can_resume(self) -> bool:
        return Action.RESUME in self.actions

    @property
    def can_terminate(self) -> bool:
        return Action.TERMINATE in self.actions

    @property
    def can_merge(self) -> bool:
        return Action.MERGE in self.actions

    @property
    def can_discard(self) -> bool:
        return Action.DISCARD in self.actions

    @property
    def can_open_pull_request(self) -> bool:
        return Action.PULL_REQUEST in self.actions

    @property
    def pr_forge_name(self) -> str:
        return {"github": "GitHub", "gitlab": "GitLab"}.get(self.pr_forge, self.pr_forge)

    @property
    def pr_label(self) -> str:
        """How the forge names the pull request: GitHub's #12, GitLab's !12."""
        if self.pr_number is None:
            return ""
        return f"{'!' if self.pr_forge == 'gitlab' else '#'}{self.pr_number}"

    @property
    def status_text(self) -> str:
        if self.changed_nothing:
            return "Completed: nothing changed"
        if self.status == self.Status.PAUSED and self.reason == self.Reason.CONFLICT and self.conflict_files:
            holder = f"#{self.conflict_with_id}" if self.conflict_with_id else "another task"
            return f"Paused: conflicts with {holder} ({', '.join(self.conflict_files)})"
        if self.status == self.Status.PAUSED and self.reason:
            return self.get_reason_display()
        return self.get_status_display()


_S = Task.Status
# What may be done to a task in each status: the one table buttons and service guards read.
ACTIONS: dict[Task.Status, frozenset[Action]] = {
    _S.PENDING: frozenset({Action.PAUSE, Action.TERMINATE, Action.DISCARD}),
    _S.QUEUED: frozenset({Action.PAUSE, Action.TERMINATE, Action.DISCARD}),
    _S.RUNNING: frozenset({Action.PAUSE, Action.TERMINATE}),
    _S.PAUSED: frozenset({Action.RESUME, Action.TERMINATE, Action.DISCARD}),
    _S.FAILED: frozenset({Action.RESUME, Action.DISCARD}),
    _S.COMPLETED: frozenset({Action.RESUME, Action.MERGE, Action.DISCARD, Action.PULL_REQUEST}),
    _S.MERGED: frozenset(),
    _S.CANCELLED: frozenset({Action.DISCARD}),
}


def may_act(user: AbstractBaseUser | AnonymousUser, task: Task) -> bool:
    """Who may act on a task: everyone who may see it sees it; its creator (unless a viewer now) and staff act on it."""
    if not user.is_authenticated or not user.is_active:
        return False
    if bool(getattr(user, "is_staff", False)):
        return True
    # A viewer reads the task and acts on nothing, not even one they made while a member.
    return task.created_by_id == user.pk and roles.may_run(user)


# A task that waits for another one's files resumes by itself once those are merged.
BLOCKED_BY_REASON: dict[Task.Reason, frozenset[Action]] = {Task.Reason.CONFLICT: frozenset({Action.RESUME})}
# Only offered where the task's project has a remote and forge (tasks.remotes).
NEEDS_REMOTE: frozenset[Action] = frozenset({Action.PULL_REQUEST})
# Only offered when the task changed a file: its branch has something to merge or to propose.
NEEDS_CHANGES: frozenset[Action] = frozenset({Action.MERGE, Action.PULL_REQUEST})


class BoardNote(models.Model):
    """Why the task scheduler holds new starts back (empty: it does not), as the board shows it.

    One row, written by the scheduler when its note changes and read by every board page and
    socket: in the database, not in the scheduler's memory, so that any process can show it."""

    ONE = 1

    text = models.TextField(blank=True)
    changed_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.text or "(nothing held back)"

    @classmethod
    def read(cls) -> str:
        return cls.objects.filter(pk=cls.ONE).values_list("text", flat=True).first() or ""


class ReviewComment(models.Model):
    """A reviewer's comment on lines of a task's diff. A draft until "Send review" sends every
    draft of the task in one follow-up; the run that follows marks those whose lines it changed.

    ``side`` says which version the lines number: "new" (the branch's: added and unchanged lines)
    or "old" (the base's: removed lines)."""

    class Side(models.TextChoices):
        NEW = "new", "new version"
        OLD = "old", "old version"

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="review_comments")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    path = models.CharField("file", max_length=1024)
    start_line = models.PositiveIntegerField()
    end_line = models.PositiveIntegerField()
    side = models.CharField(max_length=3, choices=Side.choices, default=Side.NEW)
    text = models.TextField()
    # The lines as they read when the comment was made: the follow-up quotes them to the agent.
    excerpt = models.TextField(blank=True)
    # The run whose diff the comment was made on (the task's latest turn then), if it had one.
    made_on = models.ForeignKey("chat.Turn", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    # Sent: when, and the branch's commit then (what the run that follows changed is measured from it).
    sent_at = models.DateTimeField(null=True, blank=True)
    sent_head = models.CharField(max_length=64, blank=True)
    # The run after the review was sent: it was checked against it, and addressed it if it changed its lines.
    checked_in = models.ForeignKey("chat.Turn", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    addressed_in = models.ForeignKey("chat.Turn", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["path", "start_line", "id"]
        indexes = [models.Index(fields=["task", "sent_at"])]

    def __str__(self) -> str:
        return f"{self.path}:{self.lines_label} on task #{self.task_id}"

    @property
    def lines_label(self) -> str:
        return (
            f"line {self.start_line}"
            if self.start_line == self.end_line
            else f"lines {self.start_line}–{self.end_line}"
        )

    @property
    def is_draft(self) -> bool:
        return self.sent_at is None

    @property
    def state(self) -> str:
        """draft, sent (its run has not ended yet), addressed, or unaddressed (the run left its lines)."""
        if self.sent_at is None:
            return "draft"
        if self.addressed_in_id is not None:
            return "addressed"
        return "unaddressed" if self.checked_in_id is not None else "sent"
