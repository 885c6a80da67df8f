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
