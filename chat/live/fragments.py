"""HTML fragments for the websocket, rendered from the same partials as the pages.

Each fragment carries ``hx-swap-oob``, so htmx's websocket extension puts it in place.
"""

from __future__ import annotations

from django.template.loader import render_to_string

from ..models import Event, Session, Turn
from ..selectors import TurnPage

PAGE = "chat/session.html"


def turn_appended(turn: Turn) -> str:
    html = render_to_string(f"{PAGE}#turn", {"turn": turn})
    return f'<div hx-swap-oob="beforeend:#turns">{html}</div>'


def turn_replaced(turn: Turn) -> str:
    """The whole turn in place of the one on the page (its status and streamed text may have moved on)."""
    return render_to_string(f"{PAGE}#turn", {"turn": turn, "replace": True})


def event_appended(event: Event) -> str:
    html = render_to_string(f"{PAGE}#event", {"event": event})
    return f'<div hx-swap-oob="beforeend:#turn-{event.turn_id}-events">{html}</div>'


def event_replaced(event: Event) -> str:
    return render_to_string(f"{PAGE}#event", {"event": event, "oob": True})


def turn_status(turn: Turn) -> str:
    return render_to_string(f"{PAGE}#turn-status", {"turn": turn, "oob": True})


def session_state(session: Session) -> str:
    """Status, Stop button and title: what changes on the page when a turn starts or ends."""
    context = {"session": session, "oob": True}
    return render_to_string(f"{PAGE}#session-state", context) + render_to_string(f"{PAGE}#session-title", context)


def turns_refreshed(session: Session, page: TurnPage) -> str:
    return render_to_string(f"{PAGE}#turns", {"session": session, "turns": page.turns, "has_older": page.has_older,
                                              "oob": True})


def flash(text: str, *, level: str = "error") -> str:
    return render_to_string("includes/flash.html", {"text": text, "level": level, "oob": True})
