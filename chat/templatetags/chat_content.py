"""Tags that show the content of a turn: answers as Markdown, tool calls and results as cards.

Each reads ``redact`` from the context (a share page's working directory): there the server's
paths are hidden, as the ``show`` tag does for plain text.
"""

from django import template
from django.utils.safestring import SafeString, mark_safe

from chat.markup import render_markdown
from chat.models import Event
from chat.toolcards import ResultCard, ToolCard, result_card, tool_card

register = template.Library()


@register.simple_tag(takes_context=True)
def markdown(context: template.Context, text: str, complete: bool = True) -> SafeString:
    """``text`` rendered (and sanitised) by :func:`chat.markup.render_markdown`; an incomplete
    text is still streaming, so what it leaves open is closed first."""
    return mark_safe(render_markdown(text or "", streaming=not complete, redact=context.get("redact")))


@register.simple_tag(takes_context=True)
def card_of(context: template.Context, event: Event) -> ToolCard:
    """The card of a tool call or of a permission prompt (both hold the tool's input)."""
    data = event.data or {}
    return tool_card(event.name or str(data.get("tool") or ""), data.get("input"), redact=context.get("redact"))


@register.simple_tag(takes_context=True)
def result_of(context: template.Context, event: Event) -> ResultCard:
    return result_card(
        str((event.data or {}).get("tool") or ""), event.text, is_error=event.is_error, redact=context.get("redact")
    )
