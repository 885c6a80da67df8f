from pathlib import PurePath

from django import template

from chat.models import Event

register = template.Library()

# The input field that best says what a tool call does, per tool.
_SUMMARY_FIELDS = ("file_path", "command", "path", "pattern", "url", "query", "description", "prompt")


@register.filter
def tool_summary(event: Event) -> str:
    tool_input = (event.data or {}).get("input") or {}
    for name in _SUMMARY_FIELDS:
        if tool_input.get(name):
            value = str(tool_input[name])
            return value if len(value) <= 200 else value[:199] + "…"
    return ""


@register.filter
def seconds(ms: int | None) -> str:
    return f"{(ms or 0) / 1000:.1f}"


@register.filter
def basename(path: str) -> str:
    return PurePath(path or "").name
