"""Tags of shared pages."""

from django import template

from chat.paths import hide_paths

register = template.Library()


@register.simple_tag(takes_context=True)
def show(context: template.Context, value: object) -> object:
    """``value``, escaped; on a shared page (``redact`` holds the chat's working directory)
    with the server's paths hidden. Pages and websocket fragments of the owner show it as is."""
    root = context.get("redact")
    if not root or not isinstance(value, str):
        return value
    return hide_paths(value, root=root)
