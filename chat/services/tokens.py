"""API tokens: one bearer token per user, for IDE plugins and scripts."""

from __future__ import annotations

import hmac
import re
import secrets

from django.contrib.auth.models import User
from django.utils import timezone

from ..models import ApiToken

# What token_urlsafe makes; anything else is refused before it reaches the database.
_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{20,64}")


def _new_key() -> str:
    return secrets.token_urlsafe(32)


def token_for(*, user: User) -> ApiToken:
    """The user's token, made on first use."""
    token, _ = ApiToken.objects.get_or_create(user=user, defaults={"key": _new_key()})
    return token


def regenerate_token(*, user: User) -> ApiToken:
    """A new token for the user; the old one stops working at once."""
    token, created = ApiToken.objects.get_or_create(user=user, defaults={"key": _new_key()})
    if not created:
        token.key = _new_key()
        token.created_at = timezone.now()
        token.last_used_at = None
        token.save(update_fields=["key", "created_at", "last_used_at"])
    return token


async def user_for_token(*, key: str) -> User | None:
    """The active user a presented token belongs to (and note its use), or None."""
    if not _TOKEN_RE.fullmatch(key):
        return None
    token = await ApiToken.objects.select_related("user").filter(key=key).afirst()
    # The lookup uses the unique index; the constant-time compare guards against a collation
    # that matches case-insensitively or ignores trailing spaces.
    if token is None or not hmac.compare_digest(token.key.encode(), key.encode()) or not token.user.is_active:
        return None
    await ApiToken.objects.filter(pk=token.pk).aupdate(last_used_at=timezone.now())
    return token.user
