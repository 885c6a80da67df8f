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
