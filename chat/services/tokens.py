"""API tokens: one bearer token per user, for IDE plugins and scripts.

Only a SHA-256 hash of a token is stored: a leaked database leaks no working token, and the
owner sees the token once, when it is made.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

from django.contrib.auth.models import User
from django.utils import timezone

from members import audit

from ..models import ApiToken

# What token_urlsafe makes; anything else is refused before it reaches the database.
_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{20,64}")
HINT_CHARS = 4


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    key: str  # shown to its owner now, and never again


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def issue_token(*, user: User, actor: audit.Actor = None) -> IssuedToken:
    """A new token for the user; one they had stops working at once. ``actor``: who asked (the
    user themselves on Settings; None: the server's command), for the audit log."""
    key = secrets.token_urlsafe(32)
    earlier = ApiToken.objects.filter(user=user).values_list("hint", flat=True).first()
    if earlier is not None:
        audit.record(actor=actor, action=audit.Action.TOKEN_REVOKED, obj=user, detail=f"token …{earlier}, replaced")
    token, _ = ApiToken.objects.update_or_create(
        user=user,
        defaults={
            "key_hash": hash_key(key),
            "hint": key[-HINT_CHARS:],
            "created_at": timezone.now(),
            "last_used_at": None,
        },
    )
    audit.record(
        actor=actor,
        action=audit.Action.TOKEN_ISSUED,
        obj=user,
        detail=f"token …{token.hint}",
    )
    return IssuedToken(token=token, key=key)


def revoke_token(*, token: ApiToken, actor: audit.Actor) -> None:
    """Withdraw a token (the admin's delete): calls with it answer 401 from now on."""
    audit.record(actor=actor, action=audit.Action.TOKEN_REVOKED, obj=token.user, detail=f"token …{token.hint}")
    token.delete()


async def user_for_token(*, key: str) -> User | None:
    """The active user a presented token belongs to (and note its use), or None."""
    if not _TOKEN_RE.fullmatch(key):
        return None
    # The lookup is by a hash of the key: comparing hashes leaks nothing about the stored keys.
    token = await ApiToken.objects.select_related("user").filter(key_hash=hash_key(key)).afirst()
    if token is None or not token.user.is_active:
        return None
    await ApiToken.objects.filter(pk=token.pk).aupdate(last_used_at=timezone.now())
    return token.user
