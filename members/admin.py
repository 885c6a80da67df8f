from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest

from . import audit, roles
from .models import AuditEntry, Budget, Invite, Profile, ProviderIdentity, Role


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


@admin.register(Budget)
class BudgetAdmin(admin.ModelAdmin[Budget]):
    """Monthly budgets: of a member (their chats and tasks) or of a project (everyone's turns there;
    "default": members' own folders). A turn that would start past one is refused, saying so."""

    list_display = ("__str__", "user", "project", "monthly_usd", "changed_at")
    list_filter = ("project",)
    search_fields = ("user__username", "project")
    autocomplete_fields = ("user",)

    def save_model(self, request: HttpRequest, obj: Budget, form: ModelForm[Budget], change: bool) -> None:
        super().save_model(request, obj, form, change)
        audit.record(
            actor=request.user, action=audit.Action.BUDGET_CHANGED, obj=obj, detail=f"${obj.monthly_usd} a month"
        )

    def delete_model(self, request: HttpRequest, obj: Budget) -> None:
        audit.record(actor=request.user, action=audit.Action.BUDGET_REMOVED, obj=obj)
        super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Budget]) -> None:
        for budget in list(queryset):
            self.delete_model(request, budget)


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin[AuditEntry]):
    """The audit log, read-only: entries are written by the services that do the actions."""

    list_display = ("at", "actor_name", "action", "object_repr", "detail")
    list_filter = ("action", "at", "object_type")
    search_fields = ("actor_name", "object_repr", "detail")
    date_hierarchy = "at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AuditEntry | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AuditEntry | None = None) -> bool:
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


class ProfileInline(admin.StackedInline[Profile, User]):
    model = Profile
    can_delete = False
    verbose_name = "role"
    help_text = (
        "Admin: staff. Member: chats and tasks of their own. Viewer: reads what is shared with them, runs nothing."
    )


class MemberAdmin(UserAdmin[User]):
    """Users with their role; changing it is written to the audit log (and an admin's role is staff)."""

    inlines = [ProfileInline]
    list_display = ("username", "email", "first_name", "last_name", "is_staff", "role")

    @admin.display(description="role")
    def role(self, obj: User) -> str:
        return roles.role_of(obj).label

    def save_model(self, request: HttpRequest, obj: User, form: ModelForm[User], change: bool) -> None:
        # The role before this save (staff status may change in the same form), for the audit log.
        request._role_before = roles.role_of(User.objects.get(pk=obj.pk)) if change else Role.MEMBER  # type: ignore[attr-defined]
        super().save_model(request, obj, form, change)

    def save_related(self, request: HttpRequest, form: ModelForm[User], formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        before = getattr(request, "_role_before", Role.MEMBER)
        roles.role_saved(user=form.instance, before=before, by=request.user)


admin.site.unregister(User)
admin.site.register(User, MemberAdmin)
