"""HTML fragments for the websocket, rendered from the same partials as the pages.

Each fragment carries ``hx-swap-oob``, so htmx's websocket extension puts it in place. A fragment
is rendered for one kind of viewer: the chat's owner (``may_answer``: the buttons of open prompts),
someone else who may look (staff, a task's viewers) or a share link's :class:`Reader`, who gets no
button and none of the server's paths, as the shared page itself shows them.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.template.loader import render_to_string

from ..models import Event, Session, Turn
from ..selectors import TurnPage

PAGE = "chat/session.html"


@dataclass(frozen=True)
class Reader:
    """Someone reading a chat through its share link (``token``): no buttons, and the chat's
    working directory (``workdir``) and every other server path hidden."""

    token: str
    workdir: str


def _viewer(may_answer: bool, reader: Reader | None) -> dict[str, Any]:
    if reader is None:
        return {"may_answer": may_answer}
    return {"may_answer": False, "share_token": reader.token, "redact": reader.workdir}


def turn_appended(turn: Turn, session: Session, *, may_answer: bool = False, reader: Reader | None = None) -> str:
    html = render_to_string(f"{PAGE}#turn", {"turn": turn, "session": session, **_viewer(may_answer, reader)})
    return f'<div hx-swap-oob="beforeend:#turns">{html}</div>'


def turn_replaced(turn: Turn, session: Session, *, may_answer: bool = False, reader: Reader | None = None) -> str:
    """The whole turn in place of the one on the page (its status and streamed text may have moved on)."""
    return render_to_string(
        f"{PAGE}#turn", {"turn": turn, "session": session, "replace": True, **_viewer(may_answer, reader)}
    )


# A tool call's id as the CLI makes them (toolu_...): safe in an element id and a CSS selector.
_TOOL_ID = re.compile(r"[A-Za-z0-9_-]{1,100}")


def event_appended(event: Event, *, may_answer: bool = False, reader: Reader | None = None) -> str:
    """A new event at the end of its turn, or, a subagent's, at the end of its Agent call's card."""
    html = render_to_string(f"{PAGE}#event", {"event": event, **_viewer(may_answer, reader)})
    parent = (event.data or {}).get("parent")
    where = f"#subagent-{parent}" if isinstance(parent, str) and _TOOL_ID.fullmatch(parent) else ""
    return f'<div hx-swap-oob="beforeend:{where or f"#turn-{event.turn_id}-events"}">{html}</div>'


def event_replaced(event: Event, *, may_answer: bool = False, reader: Reader | None = None) -> str:
    return render_to_string(f"{PAGE}#event", {"event": event, "oob": True, **_viewer(may_answer, reader)})


def prompt_views(event: Event, *, added: bool) -> dict[str, str]:
    """A permission prompt as its two kinds of viewer see it: ``answerer`` with the answer buttons,
    ``watcher`` (who may not answer: staff reading a member's chat) without."""
    shown = event_appended if added else event_replaced
    return {"answerer": shown(event, may_answer=True), "watcher": shown(event, may_answer=False)}


def turn_status(turn: Turn, session: Session, *, reader: Reader | None = None) -> str:
    return render_to_string(
        f"{PAGE}#turn-status", {"turn": turn, "session": session, "oob": True, **_viewer(False, reader)}
    )


def session_state(session: Session, *, reader: Reader | None = None) -> str:
    """Status, Stop button, model, plan mode and title: what changes on the page when a turn starts or ends.
    A reader's page has the title only."""
    if session.kind == Session.Kind.TASK:
        return ""  # a task's page has neither: its head (the task's own fragment) says its state
    context = {"session": session, "oob": True, "models": settings.CLAUDE_MODELS, **_viewer(False, reader)}
    title = render_to_string(f"{PAGE}#session-title", context)
    if reader is not None:
        return title
    return (
        render_to_string(f"{PAGE}#session-state", context)
        + render_to_string(f"{PAGE}#model-picker", context)
        + render_to_string(f"{PAGE}#plan-switch", context)
        + render_to_string(f"{PAGE}#context-meter", context)
        + title
    )


def todo_panel(session: Session, todos: Sequence[object]) -> str:
    """The agent's todo list (``todos``: :func:`chat.services.todos.todos_of`)."""
    return render_to_string(f"{PAGE}#todo-panel", {"session": session, "todos": todos, "oob": True})


def mcp_panel(session: Session, rows: Sequence[object]) -> str:
    return render_to_string(f"{PAGE}#mcp-panel", {"session": session, "mcp_servers": rows, "oob": True})


def memory_note(session: Session) -> str:
    """The memory files (CLAUDE.md) the chat's agent read at its latest start."""
    return render_to_string(f"{PAGE}#memory-note", {"session": session, "oob": True})


def context_meter(session: Session) -> str:
    return render_to_string(f"{PAGE}#context-meter", {"session": session, "oob": True})


def turns_refreshed(session: Session, page: TurnPage, *, may_answer: bool, reader: Reader | None = None) -> str:
    return render_to_string(
        f"{PAGE}#turns",
        {
            "session": session,
            "turns": page.turns,
            "has_older": page.has_older,
            "oob": True,
            **_viewer(may_answer, reader),
        },
    )


def for_reader(shown: str, pk: str, *, session_id: uuid.UUID, reader: Reader) -> str:
    """What changed in the chat (``shown`` and the ``pk`` of its turn, event or chat, as
    :func:`chat.live.notify.send` names it) as a reader's page shows it; only the reader's own chat's
    turns and events are read."""
    if shown in ("turn_added", "turn_changed"):
        turn = Turn.objects.select_related("session", "author").filter(pk=pk, session_id=session_id).first()
        if turn is None:
            return ""
        if shown == "turn_added":
            return turn_appended(turn, turn.session, reader=reader)
        return turn_status(turn, turn.session, reader=reader)
    if shown in ("event_added", "event_changed"):
        event = Event.objects.filter(pk=pk, turn__session_id=session_id).first()
        if event is None:
            return ""
        return (event_appended if shown == "event_added" else event_replaced)(event, reader=reader)
    if shown == "session_changed":
        session = Session.objects.filter(pk=session_id).first()
        return session_state(session, reader=reader) if session is not None else ""
    return ""


def recent_chats(chats: list[Session]) -> str:
    """The sidebar's recent chats of one member, as every page of theirs shows them."""
    return render_to_string("includes/recent_chats.html", {"recent_chats": chats, "oob": True})


def flash(text: str, *, level: str = "error", refused: bool = False, url: str = "") -> str:
    """A notice on the page; ``refused``: the message just sent was not taken (the page puts it back in
    the box); ``url``: a page it leads to."""
    return render_to_string(
        "includes/flash.html", {"text": text, "level": level, "oob": True, "refused": refused, "url": url}
    )
