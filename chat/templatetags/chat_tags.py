from datetime import datetime
from pathlib import PurePath

from django import template
from django.utils import timezone
from django.utils.timesince import timesince

register = template.Library()


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
