"""A project's setup and check commands, and each time one ran for a task.

Kept apart from :mod:`tasks.models` (which imports this module at its end, so Django registers the
models with the tasks app) to keep that module readable. The commands are text an admin (a shared
project) or a member (their own folder) typed: they run only inside the task's sandbox, as
``bash -lc <command>`` (see :mod:`tasks.services.checks`).
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

# The most of a command's output that is kept (its end: where a test run says what failed).
OUTPUT_LIMIT = 64 * 1024
MAX_RUNS_LIMIT = 20
MAX_TIMEOUT = 24 * 3600


class ProjectChecks(models.Model):
    """What runs in a project's task worktrees besides the agent: ``setup_command`` once in a new
    worktree before the agent's first run, ``check_command`` after each run that ended normally.

    ``project`` is the task's project key (a key of CLAUDE_PROJECTS, or "default" for a member's own
    folder); ``owner`` names whose own folder it is ("default" only: every member has one), and is
    empty for a shared project."""

    project = models.CharField(max_length=100)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        help_text="Only for a member's own folder (project “default”); empty for a shared project.",
    )
    setup_command = models.TextField(
        blank=True,
        help_text="Runs once in a new task worktree, before the agent starts (e.g. installing dependencies).",
    )
    check_command = models.TextField(
        blank=True, help_text="Runs after each run of a task that ended normally (tests, lint); exit code 0 passes."
    )
    max_check_runs = models.PositiveSmallIntegerField(
        "runs until the check passes",
        default=0,
        validators=[MaxValueValidator(MAX_RUNS_LIMIT)],
        help_text=(
            "0: a failed check is only shown. N: a failed check goes back to the agent as a follow-up with its "
            "output, until it passes or N runs have been checked; then the task waits for you."
        ),
    )
    timeout_seconds = models.PositiveIntegerField(
        "time limit (seconds)",
        default=600,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_TIMEOUT)],
        help_text="Each command is ended (with everything it started) after this many seconds.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "project checks"
        verbose_name_plural = "project checks"
        constraints = [
            models.UniqueConstraint(fields=["project", "owner"], name="tasks_checks_one_per_folder"),
            models.UniqueConstraint(
                fields=["project"], condition=models.Q(owner__isnull=True), name="tasks_checks_one_per_project"
            ),
        ]

    def __str__(self) -> str:
        return f"Checks of {self.project}" + (f" ({self.owner})" if self.owner_id else "")


class CheckRun(models.Model):
    """One run of a project's setup or check command for a task: its result and the end of its output."""

    class Kind(models.TextChoices):
        SETUP = "setup", "Setup"
        CHECK = "check", "Check"

    task = models.ForeignKey("tasks.Task", on_delete=models.CASCADE, related_name="check_runs")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    # The task's run it followed (its turns counted, 1 for the first); a setup's is the run it preceded.
    run_number = models.PositiveIntegerField()
    command = models.TextField()
    passed = models.BooleanField()
    exit_code = models.IntegerField(null=True, blank=True)  # None: it was ended (timed out) or never started
    timed_out = models.BooleanField(default=False)
    output = models.TextField(blank=True)
    truncated = models.BooleanField(default=False)  # the output's beginning was cut (OUTPUT_LIMIT)
    # Its failure went back to the agent as a follow-up (see ProjectChecks.max_check_runs).
    sent_back = models.BooleanField(default=False)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["task", "kind", "-id"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} of task #{self.task_id}, run {self.run_number}: {self.result}"

    @property
    def result(self) -> str:
        """How it ended, in words the pages show."""
        if self.passed:
            return "passed"
        if self.timed_out:
            return "timed out"
        return "failed" if self.exit_code is not None else "could not run"
