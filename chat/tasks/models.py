"""A task: a prompt the CLI works on by itself in its own git worktree and branch.

Its Claude session is an ordinary chat :class:`~chat.models.Session` whose working directory
is the worktree; each run (the first, a resume, a follow-up) is a :class:`~chat.models.Turn`,
so a task's log is made of the same Events and renders with the same partials as a chat.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone

from ..models import Session

__all__ = ["Task"]


class TaskQuerySet(models.QuerySet["Task"]):
    def in_queue_order(self) -> TaskQuerySet:
        """Higher priority first, then the oldest."""
        return self.order_by("-priority", "queued_at", "id")

    def open(self) -> TaskQuerySet:
        """Tasks whose branch still exists (neither merged nor discarded)."""
        return self.exclude(status__in=Task.CLOSED)


class Task(models.Model):
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

    CLOSED = (Status.MERGED, Status.CANCELLED)
    ACTIVE = (Status.QUEUED, Status.RUNNING)

    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="claude_tasks")
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

    objects = TaskQuerySet.as_manager()

    class Meta:
        app_label = "chat"
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "-priority", "queued_at"])]

    def __str__(self) -> str:
        return f"#{self.pk} {self.title}"

    def get_absolute_url(self) -> str:
        return reverse("tasks:detail", kwargs={"task_id": self.pk})

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def has_worktree(self) -> bool:
        return bool(self.worktree_path) and (self.status not in self.CLOSED or self.can_discard)

    @property
    def can_pause(self) -> bool:
        return self.status in self.ACTIVE

    @property
    def can_resume(self) -> bool:
        return self.status in (self.Status.PAUSED, self.Status.FAILED, self.Status.COMPLETED) and self.reason != self.Reason.CONFLICT

    @property
    def can_terminate(self) -> bool:
        return self.status in (self.Status.PENDING, self.Status.QUEUED, self.Status.RUNNING, self.Status.PAUSED)

    @property
    def can_merge(self) -> bool:
        return self.status == self.Status.COMPLETED

    @property
    def can_discard(self) -> bool:
        if self.status == self.Status.CANCELLED:
            # Terminating keeps the worktree and branch; discarding removes them.
            return bool(self.worktree_path) and Path(self.worktree_path).is_dir()
        return self.status not in (self.Status.MERGED, self.Status.RUNNING)

    @property
    def status_text(self) -> str:
        if self.status == self.Status.PAUSED and self.reason:
            return self.get_reason_display()
        return self.get_status_display()
