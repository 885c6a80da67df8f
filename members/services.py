"""Adding members: an account made by staff with a password shown once, an invite link that lets
one person make their own account, once, before it expires, or a sign-in with the team's identity
provider (the member found by the provider's subject or verified email, or made as OIDC_SIGN_UP says).

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
from .models import Invite, ProviderIdentity

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


def make_invite(*, created_by: User | None, days: int = INVITE_DAYS, note: str = "", email: str = "") -> NewInvite:
    """A new invite that works once, for ``days`` days; its token is in the link and nowhere else.
    With ``email``, signing in with the identity provider under that verified email uses it too."""
    if not 1 <= days <= MAX_INVITE_DAYS:
        raise Refused(f"An invite may last from 1 to {MAX_INVITE_DAYS} days, not {days}.")
    email = email.strip()
    if email and "@" not in email:
        raise Refused(f"{email!r} is not an email address.")
    token = secrets.token_urlsafe(32)
    invite = Invite.objects.create(
        token_hash=_hash(token),
        created_by=created_by,
        note=note[:120],
        email=email,
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


def _use_up(invite: Invite) -> None:
    """Mark the invite used, once: of two at once, the second is refused."""
    if not Invite.objects.filter(pk=invite.pk, used_at__isnull=True).update(used_at=timezone.now()):
        raise Refused("This invite link was already used: each works once. Ask an admin for a new one.")


def accept_invite(*, token: str, username: str, password: str) -> User:
    """Make the account of whoever holds the invite, and use the invite up (at most one account,
    however many press at once). ``password`` is checked already (the form's validators)."""
    with transaction.atomic():
        invite = invite_for(token=token)
        _use_up(invite)
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


SIGN_UP_POLICIES = ("open", "invited", "off")


@dataclass(frozen=True)
class ProviderClaims:
    """What the identity provider said of the person signing in (from its verified ID token)."""

    issuer: str
    subject: str
    email: str
    email_verified: bool


@dataclass(frozen=True)
class SignedIn:
    user: User
    created: bool  # a new member, made by this sign-in
    invite: Invite | None  # the invite this sign-in used up


def username_from_email(email: str) -> str:
    """A free username made from the email's local part: Django's characters only, numbered if taken."""
    base = re.sub(r"[^\w.+-]", "", email.partition("@")[0], flags=re.ASCII)[:140] or "member"
    name, number = base, 1
    while User.objects.filter(username__iexact=name).exists():
        number += 1
        name = f"{base}{number}"
    return name


def _live_invite_for_email(email: str) -> Invite | None:
    return (
        Invite.objects.filter(email__iexact=email, used_at__isnull=True, expires_at__gt=timezone.now())
        .order_by("created_at")
        .first()
    )


def _sign_up(*, claims: ProviderClaims, sign_up: str, invite_token: str | None) -> SignedIn:
    """A new member for a verified email that no account has, as the sign-up policy allows."""
    if sign_up == "off":
        raise Refused(
            f"No member here has the email {claims.email}, and new members cannot sign up with the identity "
            "provider. Ask an admin to add you (with that email) or for an invite link."
        )
    invite = invite_for(token=invite_token) if invite_token else _live_invite_for_email(claims.email)
    if invite is None and sign_up == "invited":
        raise Refused(
            f"{claims.email} is not invited. Ask an admin for an invite, then follow its link (or sign in again "
            "once the invite is made for this email)."
        )
    if invite is not None and invite.email and invite.email.lower() != claims.email.lower():
        raise Refused(
            f"This invite is for another email address than {claims.email}. Sign in with the account it is for, "
            "or ask an admin for an invite for this one."
        )
    try:
        with transaction.atomic():
            if invite is not None:
                _use_up(invite)
            user = User.objects.create_user(username_from_email(claims.email), email=claims.email)
            user.set_unusable_password()
            user.save(update_fields=["password"])
            if invite is not None:
                Invite.objects.filter(pk=invite.pk).update(used_by=user)
    except IntegrityError:
        # Another sign-in took the same new name at the same moment (a second tab, say).
        raise Refused("Your account was being made by another sign-in at the same moment: sign in again.") from None
    return SignedIn(user=user, created=True, invite=invite)


def sign_in_with_provider(*, claims: ProviderClaims, sign_up: str, invite_token: str | None = None) -> SignedIn:
    """The member the identity provider vouches for: found by its subject, else by the verified email
    (then the subject is kept for next time), else made as ``sign_up`` allows ("open", "invited",
    "off"); ``invite_token`` is an invite link's, followed before signing in. Refused (with what to
    do) for an unverified email, an email several accounts share, a deactivated member, no invite."""
    if sign_up not in SIGN_UP_POLICIES:
        raise ValueError(f"sign_up must be one of {SIGN_UP_POLICIES}, not {sign_up!r}")
    identity = (
        ProviderIdentity.objects.filter(issuer=claims.issuer, subject=claims.subject).select_related("user").first()
    )
    signed_in: SignedIn
    if identity is not None:
        signed_in = SignedIn(user=identity.user, created=False, invite=None)
    else:
        if not claims.email or not claims.email_verified:
            raise Refused(
                f"The identity provider has not verified your email address{' ' + claims.email if claims.email else ''}, "
                "so it cannot be matched to a member. Verify it with the provider, then sign in again."
            )
        matches = list(User.objects.filter(email__iexact=claims.email)[:2])
        if len(matches) > 1:
            raise Refused(
                f"Several accounts here have the email {claims.email}, so it is not clear which is yours. "
                "Ask an admin to leave that email on one account only."
            )
        if matches:
            signed_in = SignedIn(user=matches[0], created=False, invite=None)
        else:
            signed_in = _sign_up(claims=claims, sign_up=sign_up, invite_token=invite_token)
    user = signed_in.user
    if not user.is_active:
        raise Refused(f"The account {user.get_username()} is deactivated. Ask an admin if it should be active again.")
    ProviderIdentity.objects.update_or_create(
        issuer=claims.issuer,
        subject=claims.subject,
        defaults={"user": user, "last_signed_in_at": timezone.now()},
    )
    return signed_in
