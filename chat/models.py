"""Sessions mirror Claude Code sessions; turns hold what a person sent, events what streamed back."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, Group
from django.db import models
from django.db.models import Count, Sum
from django.urls import reverse
from django.utils import timezone

# Their own modules, registered with the app here (Django looks for an app's models in its models
# module) and importable from here as before.
from .cluster_models import Node as Node
from .cluster_models import Placement as Placement
from .cluster_models import StorageMark as StorageMark
from .mcp_models import MCP_NAME_RE as MCP_NAME_RE
from .mcp_models import McpServer as McpServer

TITLE_LENGTH = 120
# The CLI's permission mode in which the agent only plans (ExitPlanMode carries its plan).
PLAN_MODE = "plan"


class SessionQuerySet(models.QuerySet["Session"]):
    def owned_by(self, user: AbstractBaseUser | AnonymousUser) -> SessionQuerySet:
        return self.filter(owner_id=user.pk)

    def chats(self) -> SessionQuerySet:
        """Sessions people chat in (not the sessions of tasks, which live on their task's page)."""
        return self.filter(kind=Session.Kind.CHAT)

    def active(self) -> SessionQuerySet:
        return self.filter(archived_at__isnull=True)

    def archived(self) -> SessionQuerySet:
        return self.filter(archived_at__isnull=False)

    def stale(self, *, older_than: timedelta, now: datetime | None = None) -> SessionQuerySet:
        """Unarchived sessions idle for longer than ``older_than``, with no turn pending."""
        cutoff = (now or timezone.now()) - older_than
        busy = Turn.objects.filter(session=models.OuterRef("pk"), status__in=Turn.PENDING)
        return self.active().filter(last_activity_at__lt=cutoff).exclude(models.Exists(busy))

    def with_stats(self) -> SessionQuerySet:
        return self.annotate(
            turn_count=Count("turns", distinct=True),
            tokens=Sum("turns__input_tokens") + Sum("turns__output_tokens"),
            cost=Sum("turns__cost_usd"),
        )


class Session(models.Model):
    class Status(models.TextChoices):
        IDLE = "idle", "Idle"
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        ARCHIVED = "archived", "Archived"

    class Kind(models.TextChoices):
        CHAT = "chat", "Chat"
        # The session of an autonomous task: it takes messages only as the task's follow-ups.
        TASK = "task", "Task"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False, verbose_name="session UUID")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_sessions")
    title = models.CharField(max_length=TITLE_LENGTH, blank=True)
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.CHAT)
    # The shared project the chat works in (a key of CLAUDE_PROJECTS); blank: the owner's own folder.
    project = models.CharField(max_length=64, blank=True)
    workdir = models.CharField("working directory", max_length=1024)
    # The CLI's config folder of this chat alone (CLAUDE_CONFIG_DIR there): its transcript lives in it,
    # and its agent sees no other chat's.
    config_dir = models.CharField("CLI config folder", max_length=1024, blank=True)
    transcript_path = models.CharField("CLI transcript", max_length=2048, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.IDLE, db_index=True)
    # True once the CLI has a transcript for this id: later turns use --resume.
    cli_created = models.BooleanField(default=False)
    # The model this chat's CLI runs with (one of CLAUDE_MODELS); blank: the CLI's own default.
    model = models.CharField(max_length=100, blank=True)
    # The CLI's permission mode this chat runs in: "plan" (the agent plans and changes nothing
    # until the person runs its plan), or blank: the project's (CLAUDE_PERMISSION_MODE).
    permission_mode = models.CharField(max_length=20, blank=True)
    # How full the context window is: the tokens the model read at the chat's latest API request
    # (input and cache), and the window the CLI reports for its model (null until it has said).
    context_tokens = models.PositiveIntegerField(null=True, blank=True)
    context_window = models.PositiveIntegerField(null=True, blank=True)
    # A rewind's point: the next turn's process resumes the conversation at this transcript entry
    # (the CLI's --resume-session-at); cleared once it has. Blank: resume where the transcript ends.
    resume_at = models.CharField(max_length=36, blank=True)
    # A rewind that asked for the files too: the next process puts them back as they were when this
    # user message was sent (the CLI's file checkpoints); cleared once it has tried.
    restore_files_at = models.CharField(max_length=36, blank=True)
    # The chat this one was forked from, and after which of its turns. No database constraint or
    # index: SQLite could then add and drop the columns in place, never rebuilding chat_session
    # (the search index's triggers name it); Django still sets them null when those go.
    forked_from = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="forks",
        db_constraint=False,
        db_index=False,
    )
    forked_after = models.ForeignKey(
        "Turn", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_constraint=False, db_index=False
    )
    # The agent's todo list as its panel shows it (chat.services.todos), kept when it changes so that
    # opening the chat reads no events for it; null: it never kept one.
    todos = models.JSONField(null=True, blank=True)
    # The memory files (CLAUDE.md) its agent read at its latest start, as the CLI named them
    # (chat.services.memory): {"turn": id, "prompt": text, "files": [...]}; kept so that opening the
    # chat reads no events for it. Null: none read yet.
    memory_read = models.JSONField(null=True, blank=True)
    # Tools a person chose "Always allow" for in this chat: not asked about again.
    always_allowed = models.JSONField(default=list, blank=True)
    # The names of its project's MCP servers its member turned off for this chat (chat.services.mcp);
    # null: none. Nullable without a default, as mcp_seen: added without rebuilding the table.
    mcp_off = models.JSONField(null=True, blank=True)
    # The MCP servers and their tools as the CLI last reported them (its init message); null: not yet.
    mcp_seen = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_activity_at = models.DateTimeField(default=timezone.now, db_index=True)
    archived_at = models.DateTimeField(null=True, blank=True)
    archive_path = models.CharField(max_length=2048, blank=True)

    objects = SessionQuerySet.as_manager()

    class Meta:
        ordering = ["-last_activity_at"]
        indexes = [models.Index(fields=["owner", "-last_activity_at"])]

    def __str__(self) -> str:
        return self.title or f"Chat {self.id}"

    def get_absolute_url(self) -> str:
        return reverse("chat:session", kwargs={"session_id": self.id})

    @property
    def is_archived(self) -> bool:
        return self.archived_at is not None

    @property
    def plan_mode(self) -> bool:
        return self.permission_mode == PLAN_MODE

    @property
    def context_percent(self) -> int | None:
        if not self.context_tokens or not self.context_window:
            return None
        return min(100, round(100 * self.context_tokens / self.context_window))

    @property
    def display_title(self) -> str:
        return self.title or "New chat"

    def answerable_by(self, user: AbstractBaseUser | AnonymousUser) -> bool:
        """Who answers this session's permission prompts: its owner; a task's also staff."""
        return self.owner_id == user.pk or (self.kind == self.Kind.TASK and bool(getattr(user, "is_staff", False)))


class TurnQuerySet(models.QuerySet["Turn"]):
    def pending(self) -> TurnQuerySet:
        return self.filter(status__in=Turn.PENDING)


class Turn(models.Model):
    """One message a person sent and the CLI run that answers it."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        WAITING = "waiting", "Waiting for a free slot"
        RUNNING = "running", "Running"
        ASKING = "asking", "Waiting for your answer"
        DONE = "done", "Done"
        ERROR = "error", "Error"
        STOPPED = "stopped", "Stopped"
        TIMEOUT = "timeout", "Timed out"
        INTERRUPTED = "interrupted", "Interrupted"

    PENDING = (Status.QUEUED, Status.WAITING, Status.RUNNING, Status.ASKING)

    class Origin(models.TextChoices):
        """Where a turn came from, which says how it runs (``chat.services.execution.options_for``):
        saved with it, so that an engine can run it knowing nothing but its id."""

        PAGE = "page", "Chat page"
        API = "api", "HTTP API"
        TASK = "task", "Task"

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="turns")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    prompt = models.TextField()
    # Files sent with the message: paths relative to the session's working directory, where they were
    # saved; images among them also reach the model as image content.
    attachments = models.JSONField(default=list, blank=True)
    origin = models.CharField(max_length=8, choices=Origin.choices, default=Origin.PAGE)
    # The slash command the person chose from the menu (its name): the prompt runs as that command.
    # Blank: the prompt is text, whatever it starts with.
    command = models.CharField(max_length=64, blank=True)
    # The last entry this turn left in the CLI's transcript: where a rewind or a fork to this turn resumes.
    cli_uuid = models.CharField(max_length=36, blank=True)
    # The uuid its user message went to the CLI with: a rewind to before it puts the files back to there.
    prompt_uuid = models.CharField(max_length=36, blank=True)
    # When a rewind to an earlier turn left this one behind: the conversation no longer holds it.
    dropped_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    input_tokens = models.PositiveBigIntegerField(default=0)
    output_tokens = models.PositiveBigIntegerField(default=0)
    # This turn's own cost: the CLI reports the session's running total, this is the difference.
    cost_usd = models.FloatField(default=0.0)
    # The session's running total the CLI reported at the end of this turn.
    cli_total_cost_usd = models.FloatField(null=True, blank=True)
    # The CLI process that ran the turn (also its process group): a restart ends it if the
    # turn was still pending, and the API reports it as the worker.
    pid = models.IntegerField("CLI process id", null=True, blank=True)
    # When that process started (clock ticks after boot): a restart ends the process only if it is
    # still that one, not a later process that was given the same id.
    pid_started = models.BigIntegerField(null=True, blank=True)
    # Cluster mode: the engine node that took the turn (its recovery and the janitor go by it), and why
    # a turn was taken back, for the node that holds it to read (withdrawn across processes).
    node = models.CharField(max_length=63, blank=True, db_index=True)
    stop_note = models.TextField(blank=True)

    objects = TurnQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(fields=["session", "status"]),
            # A chat page, its websocket and "Load older" read the latest turns of one chat in this
            # order: with the index they stop after a page instead of sorting the whole chat.
            models.Index(fields=["session", "created_at", "id"], name="chat_turn_session_latest"),
        ]

    def __str__(self) -> str:
        return f"Turn {self.pk} of {self.session_id}"

    @property
    def is_pending(self) -> bool:
        return self.status in self.PENDING

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


class Event(models.Model):
    """One streamed item of a turn: assistant text, a tool call, a tool result, a notice."""

    class Kind(models.TextChoices):
        TEXT = "text", "Text"
        TOOL_USE = "tool_use", "Tool call"
        TOOL_RESULT = "tool_result", "Tool result"
        NOTICE = "notice", "Notice"
        # A tool call that waits for a person's Allow or Deny (data: tool, input, status, ...).
        PERMISSION = "permission", "Permission request"

    turn = models.ForeignKey(Turn, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    name = models.CharField(max_length=200, blank=True)
    text = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)
    is_error = models.BooleanField(default=False)
    # False while assistant text is still streaming in.
    complete = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.kind} {self.name}".strip()


class Attachment(models.Model):
    """A file a member attached to a chat (saved in its working directory): its size as uploaded
    counts toward what the member may store (CLAUDE_MAX_ATTACHMENTS_MB_PER_MEMBER); it goes with
    its chat."""

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="attached_files")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    path = models.CharField(max_length=255)  # relative to the working directory: "attachments/<name>"
    size = models.PositiveBigIntegerField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.path


class ShareLinkQuerySet(models.QuerySet["ShareLink"]):
    def live(self, *, now: datetime | None = None) -> ShareLinkQuerySet:
        now = now or timezone.now()
        return self.filter(revoked_at__isnull=True).filter(
            models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now)
        )


class ShareLink(models.Model):
    """A read-only link to one chat; only a hash of its token is stored."""

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="share_links")
    token_hash = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ShareLinkQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Share link of {self.session_id}"


class ApiToken(models.Model):
    """The bearer token an IDE plugin or script uses for the HTTP API; only a hash of it is stored,
    so it is shown once, when it is made (as share links)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_token")
    key_hash = models.CharField(max_length=64, unique=True)
    # The token's last characters, so its owner can tell which one a plugin holds.
    hint = models.CharField(max_length=8, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"API token of {self.user}"


class ProjectAccess(models.Model):
    """Who may work in a shared project (a key of CLAUDE_PROJECTS) besides staff.

    With no row for a project only staff may use it: a shared project is a real repository,
    and opening it to people is the admin's deliberate choice.
    """

    project = models.CharField(max_length=64, unique=True)
    users = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="project_access")
    groups = models.ManyToManyField(Group, blank=True, related_name="project_access")
    everyone = models.BooleanField("every member", default=False)
    # Reading a project (chats and tasks there, its files) is not changing it by hand: whether the
    # people named here may also write its files, commit and open a terminal there (the workspace).
    may_work = models.BooleanField(
        "may work in its files",
        default=False,
        help_text="The members named here may also edit, upload, commit and open a terminal in its folders.",
    )

    class Meta:
        verbose_name = "project access"
        verbose_name_plural = "project access"

    def __str__(self) -> str:
        return f"Access to {self.project}"
