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


def issue_token(*, user: User) -> IssuedToken:
    """A new token for the user; one they had stops working at once."""
    key = secrets.token_urlsafe(32)
    token, _ = ApiToken.objects.update_or_create(
        user=user,
        defaults={
            "key_hash": hash_key(key),
            "hint": key[-HINT_CHARS:],
            "created_at": timezone.now(),
            "last_used_at": None,
        },
    )
    return IssuedToken(token=token, key=key)


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
