from django.contrib import admin
from django.http import HttpRequest

from .models import Invite


@admin.register(Invite)
class InviteAdmin(admin.ModelAdmin[Invite]):
    """Invites made so far: who made them, for whom, and whether used. Delete one to withdraw it.
    New ones are made on Settings (or `scripts/manage invite`): the link is shown once, there."""

    list_display = ("__str__", "created_by", "created_at", "expires_at", "state", "used_by")
    readonly_fields = ("created_by", "note", "created_at", "expires_at", "used_at", "used_by")
    exclude = ("token_hash",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Invite | None = None) -> bool:
        return False
