"""What reviewers and CI said on a task's pull request, as last read from the forge
(:func:`drivers.forge.list_feedback`): review comments and failed checks, each kept once per
forge id, until "Send to the agent" hands the new ones to the task's agent in one follow-up.

Every text here is the forge's, written by whoever may comment there: pages show it escaped (and
only an http(s) ``url`` as a link), and nothing of it reaches a shell, a flag or a file path.
Kept apart from :mod:`tasks.models`, which re-exports it (Django finds it there).
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class PullFeedback(models.Model):
    class Kind(models.TextChoices):
        COMMENT = "comment", "Review comment"
        CHECK = "check", "Failed check"

    class State(models.TextChoices):
        NEW = "new", "New"  # not yet sent to the agent
        SENT = "sent", "Sent to the agent"
        # The run that followed completed and its commits were pushed to the pull request.
        ANSWERED = "answered", "Answered: the agent's run was pushed"
        # The forge no longer reports it: a thread resolved, a comment deleted, or a check of an
        # older commit (the next push ran the checks again). Never sent.
        GONE = "gone", "No longer reported"

    task = models.ForeignKey("tasks.Task", on_delete=models.CASCADE, related_name="pull_feedback")
    forge_id = models.CharField(max_length=64)
    kind = models.CharField(max_length=8, choices=Kind.choices)
    author = models.CharField(max_length=255, blank=True)
    name = models.CharField("check", max_length=255, blank=True)
    path = models.CharField("file", max_length=1024, blank=True)
    line = models.PositiveIntegerField(null=True, blank=True)
    body = models.TextField(blank=True)
    url = models.URLField(max_length=2000, blank=True)
    state = models.CharField(max_length=8, choices=State.choices, default=State.NEW)
    fetched_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField("sent to the agent", null=True, blank=True)

    class Meta:
        ordering = ["kind", "path", "line", "id"]
        constraints = [models.UniqueConstraint(fields=["task", "forge_id"], name="tasks_pull_feedback_once")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.forge_id} on task #{self.task_id}"

    @property
    def where(self) -> str:
        """``file, line 3`` for a comment on a line (``file`` for one on a file, "" otherwise)."""
        if not self.path:
            return ""
        return f"{self.path}, line {self.line}" if self.line else self.path
