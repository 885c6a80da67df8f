"""The audit log: people's actions outside a task's own transitions, written by the services that do them.

An entry names who (kept as text as well, so it outlives the account), when, what, on which object,
and a detail in words. It never holds a secret: a token's or link's hint at most, never the token.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import models

from .models import AuditEntry

Action = AuditEntry.Action
SERVER = "(the server: a command)"
# Who did it: a signed-in person, or None for the server itself (a command, a schedule).
type Actor = AbstractBaseUser | AnonymousUser | None


def record(
    *,
    actor: Actor,
    action: AuditEntry.Action,
    obj: models.Model | None = None,
    detail: str = "",
    actor_name: str = "",
) -> AuditEntry:
    """Write one entry. ``actor_name``: who, where there is no account (a failed sign-in's name);
    with neither, the server did it (a management command)."""
    signed_in = actor is not None and actor.is_authenticated
    name = actor_name or (actor.get_username() if signed_in and actor is not None else SERVER)
    return AuditEntry.objects.create(
        actor_id=actor.pk if signed_in and actor is not None else None,
        actor_name=name[:150],
        action=action,
        object_type=obj._meta.label if obj is not None else "",
        object_id=str(obj.pk)[:64] if obj is not None else "",
        object_repr=str(obj)[:200] if obj is not None else "",
        detail=detail,
    )


async def arecord(**kwargs: Any) -> AuditEntry:
    return await sync_to_async(lambda: record(**kwargs))()
