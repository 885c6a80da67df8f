"""Read-only share links of a chat.

A link carries a random token; only its SHA-256 hash is stored, so a leaked database does
not leak working links, and the owner sees the full link once, when it is created.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime, timedelta

from asgiref.sync import async_to_sync
from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.utils import timezone

from members import audit

from ..live import notify
from ..models import Session, ShareLink

TOKEN_BYTES = 32
# What secrets.token_urlsafe(TOKEN_BYTES) produces; anything else is not looked up at all.
_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{43}")

EXPIRY_CHOICES: dict[str, tuple[str, timedelta | None]] = {
    "1h": ("1 hour", timedelta(hours=1)),
    "1d": ("1 day", timedelta(days=1)),
    "7d": ("7 days", timedelta(days=7)),
    "30d": ("30 days", timedelta(days=30)),
    "never": ("Never", None),
}
DEFAULT_EXPIRY = "7d"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_share_link(
    *, session: Session, user: User, expires_in: timedelta | None, now: datetime | None = None
) -> tuple[ShareLink, str]:
    """A new live link; returns it with its token, which is not stored and cannot be shown again."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    expires_at = (now or timezone.now()) + expires_in if expires_in is not None else None
    link = ShareLink.objects.create(
        session=session, token_hash=hash_token(token), created_by=user, expires_at=expires_at
    )
    until = f"until {expires_at:%Y-%m-%d %H:%M} UTC" if expires_at else "with no end"
    audit.record(actor=user, action=audit.Action.SHARE_MADE, obj=session, detail=f"link {link.pk}, {until}")
    return link, token


def revoke_share_links(*, links: QuerySet[ShareLink], now: datetime | None = None, actor: audit.Actor = None) -> int:
    """Revoke the live ones among ``links``; returns how many were live. The pages they opened stop
    following the chat at once. ``actor``: who revoked them, for the audit log."""
    live = list(links.filter(revoked_at__isnull=True).values_list("pk", flat=True))
    revoked = ShareLink.objects.filter(pk__in=live, revoked_at__isnull=True).update(revoked_at=now or timezone.now())
    for link in ShareLink.objects.filter(pk__in=live).select_related("session"):
        audit.record(actor=actor, action=audit.Action.SHARE_REVOKED, obj=link.session, detail=f"link {link.pk}")
    async_to_sync(notify.links_revoked)(live)
    return revoked


def live_link(*, token: str, now: datetime | None = None) -> ShareLink | None:
    """The live link of ``token`` with its chat, or None for a malformed, unknown, revoked or expired token."""
    if not _TOKEN_RE.fullmatch(token or ""):
        return None
    return ShareLink.objects.live(now=now).select_related("session").filter(token_hash=hash_token(token)).first()


def shared_session(*, token: str, now: datetime | None = None) -> Session | None:
    """The chat behind a live link, or None for a malformed, unknown, revoked or expired token."""
    link = live_link(token=token, now=now)
    return link.session if link else None


def link_state(link: ShareLink, *, now: datetime | None = None) -> str:
    if link.revoked_at is not None:
        return "revoked"
    if link.expires_at is not None and link.expires_at <= (now or timezone.now()):
        return "expired"
    return "live"
