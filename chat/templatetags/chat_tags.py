from datetime import datetime
from pathlib import PurePath

from django import template
from django.utils import timezone
from django.utils.timesince import timesince

from chat.paths import hide_paths, server_folders

register = template.Library()


@register.filter
def seconds(ms: int | None) -> str:
    return f"{(ms or 0) / 1000:.1f}"


@register.filter
def thousands(number: int | None) -> str:
    return f"{number or 0:,}"


@register.filter
def basename(path: str) -> str:
    return PurePath(path or "").name


@register.filter
def within(text: str, root: str) -> str:
    """``text`` (a path, or a message naming paths) with its paths relative to ``root`` and none of
    the server's folders shown (see :mod:`chat.paths`)."""
    return hide_paths(str(text or ""), root=root or "", only_under=server_folders())


@register.filter
def ago(moment: datetime | None) -> str:
    """How long ago, in words: "just now" under a minute (timesince alone says "0 minutes")."""
    if moment is None:
        return ""
    if (timezone.now() - moment).total_seconds() < 60:
        return "just now"
    return f"{timesince(moment)} ago"
