"""A task: a prompt the CLI works on by itself in its own git worktree and branch.

Its Claude session is an ordinary chat :class:`~chat.models.Session` whose working directory
is the worktree; each run (the first, a resume, a follow-up) is a :class:`~chat.models.Turn`,
so a task's log is made of the same Events and renders with the same partials as a chat.

How a task's state changes is one table, :data:`~tasks.transitions.TRANSITIONS` (in its own
module, re-exported here): for each state and :class:`TaskEvent`, the state it goes to (and why it
waits, its reason). What a person may do to a task in each state (:data:`ACTIONS`, the buttons) is
read from it, and who may do it is one rule,
:func:`may_act`. The one writer of a task's state (:func:`tasks.services.state.transition`)
refuses whatever the table does not allow and keeps each change as a :class:`TaskTransition` row.
Opening a pull request also needs a project with a remote (:data:`NEEDS_REMOTE`, :mod:`tasks.remotes`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import models
from django.urls import reverse
from django.utils import timezone

from chat.models import Session
from drivers import git
from members import roles

from . import remotes, transitions
from .pullfeedback import PullFeedback as PullFeedback  # its own module, registered with the app here

# The table of transitions and its names, importable from here as before (see tasks.transitions).
from .transitions import ACTION_EVENTS as ACTION_EVENTS
from .transitions import ACTIONS as ACTIONS
from .transitions import NEEDS_CHANGES as NEEDS_CHANGES
from .transitions import NEEDS_REMOTE as NEEDS_REMOTE
from .transitions import TRANSITIONS as TRANSITIONS
from .transitions import Action as Action
from .transitions import TaskEvent as TaskEvent
from .transitions import TaskStopReason as TaskStopReason
from .transitions import Transition as Transition
from .transitions import transition_for as transition_for


class TaskQuerySet(models.QuerySet["Task"]):
    def in_queue_order(self) -> TaskQuerySet:
        """Higher priority first, then the oldest."""
        return self.order_by("-priority", "queued_at", "id")

    def open(self) -> TaskQuerySet:
        """Tasks whose branch still exists (neither merged nor discarded)."""
        return self.exclude(status__in=Task.CLOSED)


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
    # Nor this: its latest changes of state, on its page (set by the selector of the page).
    history: Sequence[TaskTransition] = ()
    # Nor this: its latest check (the project's check command after a run), for its card and page.
    latest_check: CheckRun | None = None
    # Nor this: its pull request's review comments and failed checks still reported (its page's selector).
    feedback: Sequence[PullFeedback] = ()

    # The states of the table of transitions (:mod:`tasks.transitions`), under their usual names.
    # TypeAlias, not a ``type`` statement: ``Task.Status`` must stay the class itself at run time
    # (``Task.Status(value)``, ``.choices``), and mypy then takes it as a type too.
    Status: TypeAlias = transitions.Status  # noqa: UP040
    Reason: TypeAlias = transitions.Reason  # noqa: UP040

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
    # Cluster mode: the engine node running the task's run, and why its run was asked to stop (the node
    # reads it back as the scheduler's stop reason).
    node = models.CharField(max_length=63, blank=True)
    stop_requested = models.CharField(max_length=16, blank=True)
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
        # A task that waits for another one's files resumes by itself (the table's from_reasons).
        allowed = frozenset(
            action
            for action in ACTIONS[Task.Status(self.status)]
            if action not in ACTION_EVENTS or transition_for(self.status, self.reason, ACTION_EVENTS[action])
        )
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
    def feedback_new(self) -> int:
        """How many items of its pull request's feedback (as its page read them) were not sent yet."""
        return sum(1 for item in self.feedback if item.state == PullFeedback.State.NEW)

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


def may_act(user: AbstractBaseUser | AnonymousUser, task: Task) -> bool:
    """Who may act on a task: everyone who may see it sees it; its creator (unless a viewer now) and staff act on it."""
    if not user.is_authenticated or not user.is_active:
        return False
    if bool(getattr(user, "is_staff", False)):
        return True
    # A viewer reads the task and acts on nothing, not even one they made while a member.
    return task.created_by_id == user.pk and roles.may_run(user)


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


class TaskTransition(models.Model):
    """One change of a task's state, as it happened: the audit rows. Written only by
    :func:`tasks.services.state.transition` (and a task's creation, its first row); read-only in
    the admin, and a task's page lists its latest ones as its History."""

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="transitions")
    # Blank: the task's first row (created).
    from_status = models.CharField("from", max_length=16, choices=Task.Status.choices, blank=True)
    to_status = models.CharField("to", max_length=16, choices=Task.Status.choices)
    reason = models.CharField(max_length=16, choices=Task.Reason.choices, blank=True)
    event = models.CharField(max_length=16, choices=TaskEvent.choices)
    # Who asked (the button's or the API call's person); null: the system (the scheduler, a run's end, a restart).
    by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    at = models.DateTimeField(default=timezone.now)
    why = models.TextField(blank=True)

    class Meta:
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["task", "at"])]

    def __str__(self) -> str:
        return f"#{self.task_id}: {self.from_status or '—'} → {self.to_status} ({self.event})"

    @property
    def who(self) -> str:
        return self.by.get_username() if self.by is not None else "the system"


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


# Registered with the tasks app from here (see the module's text).
from .checks_models import CheckRun as CheckRun  # noqa: E402
from .checks_models import ProjectChecks as ProjectChecks  # noqa: E402
