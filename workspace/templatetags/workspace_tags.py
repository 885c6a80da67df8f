"""The workspace's links on the chat and task pages: Files for whoever sees the page, Terminal only
for who may work in that folder."""

from __future__ import annotations

from django import template
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from chat.models import Session
from tasks.models import Task

from .. import selectors

register = template.Library()


@register.simple_tag
def workspace_of(thing: Session | Task, user: AbstractBaseUser | AnonymousUser) -> selectors.Place | None:
    """The chat's or task's workspace as ``user`` sees it (None: none to show)."""
    try:
        if isinstance(thing, Task):
            return selectors.of_task(thing, user=user)
        return selectors.of_chat(thing, user=user)
    except selectors.PlaceRefused:
        return None
