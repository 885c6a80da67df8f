"""HTML fragments for the websocket, rendered from the same partials as the pages.

Each fragment carries ``hx-swap-oob``, so htmx's websocket extension puts it in place.
"""

from __future__ import annotations

from django.conf import settings
from django.template.loader import render_to_string

from ..models import Event, Session, Turn
from ..selectors import TurnPage

PAGE = "chat/session.html"


def turn_appended(turn: Turn, session: Session, *, may_answer: bool = False) -> str:
    html = render_to_string(f"{PAGE}#turn", {"turn": turn, "session": session, "may_answer": may_answer})
    return f'<div hx-swap-oob="beforeend:#turns">{html}</div>'


def turn_replaced(turn: Turn, session: Session, *, may_answer: bool = False) -> str:
    """The whole turn in place of the one on the page (its status and streamed text may have moved on)."""
    return render_to_string(
        f"{PAGE}#turn", {"turn": turn, "session": session, "replace": True, "may_answer": may_answer}
    )


def event_appended(event: Event, *, may_answer: bool = False) -> str:
    html = render_to_string(f"{PAGE}#event", {"event": event, "may_answer": may_answer})
    return f'<div hx-swap-oob="beforeend:#turn-{event.turn_id}-events">{html}</div>'


def event_replaced(event: Event, *, may_answer: bool = False) -> str:
    return render_to_string(f"{PAGE}#event", {"event": event, "oob": True, "may_answer": may_answer})


def prompt(event_id: int, *, added: bool, may_answer: bool) -> str:
    """A permission prompt as one viewer sees it: with the answer buttons only if they may answer."""
    event = Event.objects.get(pk=event_id)
    return (event_appended if added else event_replaced)(event, may_answer=may_answer)


def turn_status(turn: Turn, session: Session) -> str:
    return render_to_string(f"{PAGE}#turn-status", {"turn": turn, "session": session, "oob": True})


def session_state(session: Session) -> str:
    """Status, Stop button, model and title: what changes on the page when a turn starts or ends."""
    if session.kind == Session.Kind.TASK:
        return ""  # a task's page has neither: its head (the task's own fragment) says its state
    context = {"session": session, "oob": True, "models": settings.CLAUDE_MODELS}
    return (
        render_to_string(f"{PAGE}#session-state", context)
        + render_to_string(f"{PAGE}#model-picker", context)
        + render_to_string(f"{PAGE}#session-title", context)
    )


def turns_refreshed(session: Session, page: TurnPage, *, may_answer: bool) -> str:
    return render_to_string(
        f"{PAGE}#turns",
        {"session": session, "turns": page.turns, "has_older": page.has_older, "oob": True, "may_answer": may_answer},
    )


def recent_chats(chats: list[Session]) -> str:
    """The sidebar's recent chats of one member, as every page of theirs shows them."""
    return render_to_string("includes/recent_chats.html", {"recent_chats": chats, "oob": True})


def flash(text: str, *, level: str = "error", refused: bool = False) -> str:
    """A notice on the page; ``refused``: the message just sent was not taken (the page puts it back in the box)."""
    return render_to_string("includes/flash.html", {"text": text, "level": level, "oob": True, "refused": refused})
