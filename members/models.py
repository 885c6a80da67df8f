"""An invite: a link staff make that lets one person make their own account, once, for a while."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class Invite(models.Model):
    # Only a SHA-256 hash of the link's token: a leaked database holds no working link.
    token_hash = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    note = models.CharField("for whom", max_length=120, blank=True)
    # Optional: the email the invite is for. Signing in with the identity provider under that
    # (verified) email then makes the member without the link; the link then takes only that email.
    email = models.EmailField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    used_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Invite {self.pk}" + (f" for {self.note}" if self.note else "")

    @property
    def state(self) -> str:
        if self.used_at is not None:
            return "used"
        return "expired" if self.expires_at <= timezone.now() else "open"


class ProviderIdentity(models.Model):
    """A member as the identity provider knows them: its issuer and the subject it gives them.
    Found again by the subject, the member signs in even after their email changes there."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="provider_identities")
    issuer = models.CharField(max_length=255)
    subject = models.CharField(max_length=255)
    created_at = models.DateTimeField(default=timezone.now)
    last_signed_in_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["issuer", "subject"], name="one_member_per_provider_subject")]
        verbose_name_plural = "provider identities"

    def __str__(self) -> str:
        return f"{self.user} at {self.issuer}"


class Role(models.TextChoices):
    """What a person may do. An admin is staff; a viewer reads what is shared with them and the
    tasks of the projects open to them, and runs nothing (no message, task, API turn or terminal)."""

    ADMIN = "admin", "Admin"
    MEMBER = "member", "Member"
    VIEWER = "viewer", "Viewer"


class Profile(models.Model):
    """A person's role (and, as the team grows, what else is theirs alone). No row: a member (or an
    admin, for staff)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile")
    role = models.CharField(
        max_length=8,
        choices=Role.choices,
        default=Role.MEMBER,
        help_text="Admin: staff. Member: chats and tasks of their own. Viewer: reads what is shared with them, "
        "runs nothing. Staff status wins: untick it to take admin away.",
    )

    def __str__(self) -> str:
        return f"{self.user} ({self.get_role_display()})"


class Budget(models.Model):
    """A monthly limit in US dollars on the cost of turns: of one member's chats and tasks, or of
    everything run in one project. Set by staff in the admin; a turn that would start past it is refused."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="budget"
    )
    # A key of CLAUDE_PROJECTS, or "default" for members' own folders (all of them together).
    project = models.CharField(max_length=64, blank=True)
    monthly_usd = models.DecimalField("monthly budget (USD)", max_digits=10, decimal_places=2)
    changed_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(models.Q(user__isnull=False) & models.Q(project=""))
                | (models.Q(user__isnull=True) & ~models.Q(project="")),
                name="budget_of_a_member_or_a_project",
            ),
            models.UniqueConstraint(fields=["project"], condition=~models.Q(project=""), name="one_budget_a_project"),
        ]

    def __str__(self) -> str:
        whom = f"member {self.user}" if self.user_id else f"project {self.project}"
        return f"${self.monthly_usd} a month for {whom}"


class AuditEntry(models.Model):
    """One action a person took outside a task's own transitions: who, when, what, on which object."""

    class Action(models.TextChoices):
        SIGN_IN = "sign-in", "Signed in"
        SIGN_IN_FAILED = "sign-in-failed", "Sign-in failed"
        SHARE_MADE = "share-made", "Share link made"
        SHARE_REVOKED = "share-revoked", "Share link revoked"
        CHAT_ARCHIVED = "chat-archived", "Chat archived"
        CHAT_RESTORED = "chat-restored", "Chat restored"
        CHAT_DELETED = "chat-deleted", "Chat deleted"
        BUDGET_CHANGED = "budget-changed", "Budget changed"
        BUDGET_REMOVED = "budget-removed", "Budget removed"
        ROLE_CHANGED = "role-changed", "Role changed"
        INVITE_MADE = "invite-made", "Invite made"
        INVITE_USED = "invite-used", "Invite used"
        TOKEN_ISSUED = "token-issued", "API token issued"
        TOKEN_REVOKED = "token-revoked", "API token revoked"

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Kept as text too: the entry outlives the account (and names who tried a sign-in that failed).
    actor_name = models.CharField("who", max_length=150, blank=True)
    at = models.DateTimeField("when", default=timezone.now, db_index=True)
    action = models.CharField("what", max_length=24, choices=Action.choices, db_index=True)
    object_type = models.CharField("object type", max_length=40, blank=True)
    object_id = models.CharField("object id", max_length=64, blank=True)
    object_repr = models.CharField("object", max_length=200, blank=True)
    detail = models.TextField(blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor_name or '—'}: {self.get_action_display()} {self.object_repr}"
