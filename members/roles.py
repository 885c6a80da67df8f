"""Roles: admin (staff), member, viewer. A viewer reads the chats shared with them and the tasks of
the projects open to them, and runs nothing: no message, no task or action on one, no API turn.

Staff status wins: a staff account is an admin whatever its profile says, so an account is never
demoted behind an admin's back (untick Staff status to take admin away). Picking "Admin" as the
role makes the account staff.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User

from . import audit
from .models import Profile, Role

VIEWER_REFUSAL = (
    "Your role is viewer: you can read the chats shared with you and the tasks of the projects open to you, "
    "but not run anything (send messages, start or act on tasks, API turns). Ask an admin (staff) for a member's role."
)


def role_of(user: AbstractBaseUser | AnonymousUser, *, fresh: bool = False) -> Role:
    """The person's role; read once per user object (a page asks it for each task it shows)."""
    if not user.is_authenticated:
        return Role.VIEWER
    if getattr(user, "is_staff", False) or getattr(user, "is_superuser", False):
        return Role.ADMIN
    cached = getattr(user, "_member_role", None)
    if cached is not None and not fresh:
        return Role(cached)
    role = Profile.objects.filter(user_id=user.pk).values_list("role", flat=True).first()
    found = Role(role) if role and role != Role.ADMIN else Role.MEMBER
    setattr(user, "_member_role", found)  # noqa: B010  (not a field: kept for this request)
    return found


def may_run(user: AbstractBaseUser | AnonymousUser | None) -> bool:
    """Whether the person may start anything that runs an agent (or changes a task)."""
    return user is not None and user.is_authenticated and role_of(user) != Role.VIEWER


class ViewerRefused(Exception):
    """A viewer tried to run something; the text says so and whom to ask."""

    def __init__(self, text: str = VIEWER_REFUSAL) -> None:
        super().__init__(text)


def set_role(*, user: User, role: Role, by: AbstractBaseUser | AnonymousUser | None) -> Role:
    """Give ``user`` the role (as the admin's form does), audited."""
    before = role_of(user)
    Profile.objects.update_or_create(user=user, defaults={"role": role})
    return role_saved(user=user, before=before, by=by)


def role_saved(*, user: User, before: Role, by: AbstractBaseUser | AnonymousUser | None) -> Role:
    """After a role was saved: "Admin" makes the account staff; a change is written to the audit log."""
    chosen = Profile.objects.filter(user=user).values_list("role", flat=True).first()
    if chosen == Role.ADMIN and not user.is_staff:
        user.is_staff = True
        user.save(update_fields=["is_staff"])
    after = role_of(user, fresh=True)
    if after != before:
        audit.record(actor=by, action=audit.Action.ROLE_CHANGED, obj=user, detail=f"{before.label} → {after.label}")
    return after
