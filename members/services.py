"""Adding members: an account made by staff with a password shown once, or an invite link that lets
one person make their own account, once, before it expires.

Invites are a small service of their own (make, look up, accept), so that anything else that
invites (a project's owner, say) makes and checks them the same way.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from . import audit
from .models import Invite

INVITE_DAYS = 7
MAX_INVITE_DAYS = 90
# What token_urlsafe(32) makes; anything else is refused before it reaches the database.
_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{40,64}")


class Refused(Exception):
    """An invite that cannot be used (unknown, used, expired) or an account that cannot be made;
    the text says which and what to do."""


@dataclass(frozen=True)
class NewInvite:
    invite: Invite
    token: str  # shown to who made it now, and never again


@dataclass(frozen=True)
class NewMember:
    user: User
    password: str  # shown to who made it now, and never again


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def make_invite(*, created_by: User | None, days: int = INVITE_DAYS, note: str = "") -> NewInvite:
    """A new invite that works once, for ``days`` days; its token is in the link and nowhere else."""
    if not 1 <= days <= MAX_INVITE_DAYS:
        raise Refused(f"An invite may last from 1 to {MAX_INVITE_DAYS} days, not {days}.")
    token = secrets.token_urlsafe(32)
    invite = Invite.objects.create(
        token_hash=_hash(token),
        created_by=created_by,
        note=note[:120],
        expires_at=timezone.now() + timedelta(days=days),
    )
    audit.record(
        actor=created_by,
        action=audit.Action.INVITE_MADE,
        obj=invite,
        detail=f"for {days} day{'s' if days != 1 else ''}",
    )
    return NewInvite(invite=invite, token=token)


def invite_for(*, token: str) -> Invite:
    """The invite of a link's token, if it can still be used."""
    invite = Invite.objects.filter(token_hash=_hash(token)).first() if _TOKEN_RE.fullmatch(token) else None
    if invite is None:
        raise Refused("This invite link is not known: check that it was copied whole, or ask for a new one.")
    if invite.state == "used":
        raise Refused("This invite link was already used: each works once. Ask an admin for a new one.")
    if invite.state == "expired":
        raise Refused(
            f"This invite link expired on {invite.expires_at:%Y-%m-%d %H:%M} UTC. Ask an admin for a new one."
        )
    return invite


def accept_invite(*, token: str, username: str, password: str) -> User:
    """Make the account of whoever holds the invite, and use the invite up (at most one account,
    however many press at once). ``password`` is checked already (the form's validators)."""
    with transaction.atomic():
        invite = invite_for(token=token)
        if not Invite.objects.filter(pk=invite.pk, used_at__isnull=True).update(used_at=timezone.now()):
            raise Refused("This invite link was already used: each works once. Ask an admin for a new one.")
        try:
            user = User.objects.create_user(username, password=password)
        except IntegrityError:
            raise Refused(f"The name {username!r} is taken: pick another.") from None
        Invite.objects.filter(pk=invite.pk).update(used_by=user)
        audit.record(actor=user, action=audit.Action.INVITE_USED, obj=invite, detail=f"made the account {username}")
    return user


def add_member(*, username: str, staff: bool = False) -> NewMember:
    """An account made by staff, with a password to hand over (they change it under Settings)."""
    try:
        User._meta.get_field("username").run_validators(username)
    except ValidationError as exc:
        raise Refused(f"{username!r} cannot be a member's name: {' '.join(exc.messages)}") from None
    if User.objects.filter(username__iexact=username).exists():
        raise Refused(f"There is a member called {username!r} already: pick another name.")
    password = secrets.token_urlsafe(12)
    user = User.objects.create_user(username, password=password)
    if staff:
        user.is_staff = user.is_superuser = True
        user.save(update_fields=["is_staff", "is_superuser"])
    return NewMember(user=user, password=password)
