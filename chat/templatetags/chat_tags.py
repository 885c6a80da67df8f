from datetime import datetime
from pathlib import PurePath

from django import template
from django.utils import timezone
from django.utils.timesince import timesince

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


@register.filter
def ago(moment: datetime | None) -> str:
    """How long ago, in words: "just now" under a minute (timesince alone says "0 minutes")."""
    if moment is None:
        return ""
    if (timezone.now() - moment).total_seconds() < 60:
        return "just now"
    return f"{timesince(moment)} ago"
