"""Tags of the chat list, the older-turns button and shared pages."""

from django import template

from chat import sessions, sharing
from chat.models import Turn

register = template.Library()


@register.filter
def has_older_turns(turn: object) -> bool:
    # An empty list's ".0" arrives as "": no turn, so nothing older.
    return isinstance(turn, Turn) and sessions.has_older_turns(turn)


@register.simple_tag(takes_context=True)
def show(context: template.Context, value: object) -> object:
    """``value``, escaped; on a shared page (``redact`` holds the chat's working directory)
    with the server's paths hidden. Pages and websocket fragments of the owner show it as is."""
    root = context.get("redact")
    if not root or not isinstance(value, str):
        return value
    return sharing.hide_paths(value, root=root)
