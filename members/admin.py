from django.contrib import admin
from django.http import HttpRequest

from .models import Invite, ProviderIdentity


@admin.register(Invite)
class InviteAdmin(admin.ModelAdmin[Invite]):
    """Invites made so far: who made them, for whom, and whether used. Delete one to withdraw it.
    New ones are made on Settings (or `scripts/manage invite`): the link is shown once, there."""

    list_display = ("__str__", "created_by", "created_at", "expires_at", "state", "used_by")
    readonly_fields = ("created_by", "note", "email", "created_at", "expires_at", "used_at", "used_by")
    exclude = ("token_hash",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Invite | None = None) -> bool:
        return False


@admin.register(ProviderIdentity)
class ProviderIdentityAdmin(admin.ModelAdmin[ProviderIdentity]):
    """Who signed in with the identity provider, as which subject. Deleting one unlinks it: the member's
    next sign-in matches them by their verified email again."""

    list_display = ("user", "issuer", "subject", "created_at", "last_signed_in_at")
    readonly_fields = ("user", "issuer", "subject", "created_at", "last_signed_in_at")
    search_fields = ("user__username", "subject")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: ProviderIdentity | None = None) -> bool:
        return False
