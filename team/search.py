"""Team search, for staff: every member's chats and every task's session, through the same
full-text index as a member's own search (:mod:`chat.search`), ranked the same way."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser, User
from django.urls import reverse
from django.utils.safestring import SafeString

from chat import search
from chat.models import Session
from tasks.models import Task

PER_PAGE = 20


class NotStaff(Exception):
    """Only staff search everyone's chats; the text says so."""


@dataclass(frozen=True)
class Hit:
    title: str
    owner: str
    kind: str  # "chat" or "task #12"
    url: str  # the task's page, or the chat in the admin (staff read every chat there)
    snippet: SafeString
    last_activity: object


def team_search(*, viewer: AbstractBaseUser, query: str, page: int = 1) -> tuple[list[Hit], int]:
    """A page of the chats and tasks matching ``query``, best first, and how many match in all."""
    if not getattr(viewer, "is_staff", False):
        raise NotStaff("Team search covers everyone's chats: only staff may use it. Search your own chats on Chats.")
    if not query.strip():
        return [], 0
    found = search.search_chats(
        user=viewer,
        query=query,
        base=Session.objects.all(),
        offset=(max(page, 1) - 1) * PER_PAGE,
        limit=PER_PAGE,
        everyone=True,
    )
    ids = [chat.pk for chat in found.chats]
    owners = dict(User.objects.filter(chat_sessions__in=ids).values_list("chat_sessions", "username"))
    tasks = dict(Task.objects.filter(session_id__in=ids).values_list("session_id", "pk"))
    hits = []
    for chat in found.chats:
        task = tasks.get(chat.pk)
        hits.append(
            Hit(
                title=chat.display_title,
                owner=owners.get(chat.pk, ""),
                kind=f"task #{task}" if task else "chat",
                url=reverse("tasks:detail", args=[task])
                if task
                else reverse("admin:chat_session_change", args=[chat.pk]),
                snippet=getattr(chat, "search_snippet", SafeString("")),
                last_activity=chat.last_activity_at,
            )
        )
    return hits, found.total
