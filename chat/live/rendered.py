"""Finished turns rendered once: a chat page, Load older and a socket's refresh reuse the HTML.

A turn that has finished never changes again (its events are all saved before its final status),
so its HTML is rendered once per process, when it finishes or when a page first shows it, and
kept in a bounded in-memory cache (a restart, e.g. after a deploy with new templates, starts it
empty). A page of 50 turns then costs their rows and 50 lookups instead of 50 template renders,
and one person opening a long chat no longer holds the interpreter for long while others wait.
Pages that hide paths (shared links) and unfinished turns are rendered as before.

Nothing cached depends on who looks: the one part of a turn that does, a permission prompt's
answer buttons, exists only while the prompt is pending, and a turn settles its prompts before it
finishes. A finished turn that still shows a pending prompt (should one slip through) is rendered
for each page, as an unfinished one is.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from datetime import datetime

from django.db.models import prefetch_related_objects
from django.template.loader import render_to_string
from django.utils.safestring import SafeString, mark_safe

from ..models import Event, Turn

PAGE = "chat/session.html"
# About 20,000 turns of a few kB: the latest pages of the chats a team has open.
MAX_BYTES = 64 * 1024 * 1024


# A turn as rendered: what it is (its id could come back after a database is restored), how it ended,
# and whether a rewind left it behind.
_Key = tuple[int, datetime, datetime | None, str, datetime | None]


def _key(turn: Turn) -> _Key:
    return (turn.pk, turn.created_at, turn.finished_at, turn.status, turn.dropped_at)


class _Rendered:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self.items: OrderedDict[_Key, str] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: _Key) -> str | None:
        with self.lock:
            html = self.items.get(key)
            if html is not None:
                self.items.move_to_end(key)
            return html

    def put(self, key: _Key, html: str) -> None:
        with self.lock:
            old = self.items.pop(key, None)
            self.size += len(html) - (len(old) if old is not None else 0)
            self.items[key] = html
            while self.size > self.max_bytes and self.items:
                _pk, dropped = self.items.popitem(last=False)
                self.size -= len(dropped)


_cache = _Rendered(MAX_BYTES)


def _render(turn: Turn) -> str:
    return render_to_string(f"{PAGE}#turn", {"turn": turn})


def _viewer_independent(turn: Turn) -> bool:
    """Finished, with no prompt still open (whose buttons depend on the viewer); events prefetched."""
    return not turn.is_pending and not any(
        event.kind == Event.Kind.PERMISSION and event.data.get("status") == "pending" for event in turn.events.all()
    )


def prerender(turns: Iterable[Turn]) -> None:
    """Give each finished turn its HTML (``turn.html``), from the cache or rendered now and kept.
    The authors and events of the turns rendered now, and of unfinished ones (the template renders
    those), are read in two queries, unless they came along already."""
    to_render = []
    for turn in turns:
        html = None if turn.is_pending else _cache.get(_key(turn))
        if html is None:
            to_render.append(turn)
        else:
            turn.html = mark_safe(html)  # type: ignore[attr-defined]
    # Their sessions too: a turn's answers and tool cards show paths within its chat's folder.
    prefetch_related_objects(to_render, "author", "events", "session")
    for turn in to_render:
        if _viewer_independent(turn):
            html = _render(turn)
            _cache.put(_key(turn), html)
            turn.html = mark_safe(html)  # type: ignore[attr-defined]


def remember(turn: Turn) -> SafeString | None:
    """Render a turn that has just finished and keep it (nothing for one still pending)."""
    if turn.is_pending:
        return None
    prefetch_related_objects([turn], "author", "events", "session")
    if not _viewer_independent(turn):
        return None
    html = _render(turn)
    _cache.put(_key(turn), html)
    return mark_safe(html)
