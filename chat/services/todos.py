"""The agent's todo list, as the chat page's panel shows it.

The pinned CLI has no TodoWrite tool; with ``CLAUDE_CODE_ENABLE_TODO_TOOLS`` (set for chats) it
offers TaskCreate, TaskUpdate, TaskGet and TaskList, as interactive Claude Code does. The list is
read back from the chat's recorded calls: a TaskCreate's result names the item's number ("Task #1
created successfully: ..."), a TaskUpdate changes its status or subject. Turns a rewind left
behind do not count.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.db.models import Q

from ..live import notify
from ..models import Event, Session

CREATE, UPDATE = "TaskCreate", "TaskUpdate"
TOOLS = (CREATE, UPDATE, "TaskGet", "TaskList")
# The CLI's environment variable that gives a session its todo tools.
ENABLE = "CLAUDE_CODE_ENABLE_TODO_TOOLS"
_CREATED = re.compile(r"Task #(\d+) created")
# The newest calls a panel is built from: a long chat's list is its latest items.
MAX_EVENTS = 2000


@dataclass(frozen=True)
class Todo:
    number: str
    subject: str
    status: str  # pending, in_progress, completed
    active_form: str = ""


def todos_of(session: Session) -> list[Todo]:
    calls = (
        Event.objects.filter(turn__session=session, turn__dropped_at__isnull=True)
        .filter(
            Q(kind=Event.Kind.TOOL_USE, name__in=(CREATE, UPDATE)) | Q(kind=Event.Kind.TOOL_RESULT, data__tool=CREATE)
        )
        .order_by("-id")
        .only("kind", "name", "text", "data")[:MAX_EVENTS]
    )
    asked: dict[str, dict[str, Any]] = {}
    items: dict[str, dict[str, str]] = {}
    for event in reversed(list(calls)):
        data = event.data or {}
        given = data.get("input")
        tool_input: dict[str, Any] = given if isinstance(given, dict) else {}
        if event.kind == Event.Kind.TOOL_USE and event.name == CREATE:
            asked[str(data.get("id", ""))] = tool_input
        elif event.kind == Event.Kind.TOOL_RESULT:
            made = _CREATED.search(event.text or "")
            wanted = asked.pop(str(data.get("tool_use_id", "")), None)
            if made and wanted is not None:
                items[made.group(1)] = {
                    "subject": str(wanted.get("subject") or ""),
                    "status": "pending",
                    "active_form": str(wanted.get("activeForm") or ""),
                }
        elif (item := items.get(str(tool_input.get("taskId", "")))) is not None:
            status = str(tool_input.get("status") or item["status"])
            if status == "deleted":
                items.pop(str(tool_input.get("taskId")))
                continue
            item["status"] = status
            item["subject"] = str(tool_input.get("subject") or item["subject"])
            item["active_form"] = str(tool_input.get("activeForm") or item["active_form"])
    return [Todo(number=number, **fields) for number, fields in items.items()]


def _kept(session: Session) -> list[dict[str, str]]:
    listed = [asdict(todo) for todo in todos_of(session)]
    Session.objects.filter(pk=session.pk).update(todos=listed)
    session.todos = listed
    return listed


async def changed(session: Session) -> None:
    """The list may have changed (a call was recorded, a rewind left turns behind): kept and shown."""
    listed = await sync_to_async(_kept)(session)
    if session.kind == Session.Kind.CHAT:  # only a chat's page has the panel
        await notify.todos_changed(session, listed)
