"""Tags that show the content of a turn: answers as Markdown, tool calls and results as cards.

Answers, tool calls and results show their paths relative to the chat's working directory, never
the server's folders (:mod:`chat.paths`). On a share page (``redact`` in the context: the chat's
working directory) every absolute path is hidden, as the ``show`` tag does for plain text.
"""

from typing import Any, cast

from django import template
from django.utils.safestring import SafeString, mark_safe

from chat.markup import render_markdown
from chat.models import Event, Session, Turn
from chat.paths import PathView
from chat.toolcards import ResultCard, ToolCard, result_card, tool_card

register = template.Library()

# The input field that best says what a tool call does, per tool.
_SUMMARY_FIELDS = ("file_path", "command", "path", "pattern", "url", "query", "description", "prompt")
SUMMARY_LENGTH = 200


def _session_of(context: template.Context, event: Event) -> tuple[str, str]:
    """The working directory and kind (chat or task) of the session ``event`` belongs to: from the
    page's own chat or task, or the session its turn came with, else read once per render (a live
    fragment)."""
    session = context.get("session")
    if isinstance(session, Session):
        return session.workdir, session.kind
    turn = event.turn if Event.turn.is_cached(event) else None
    if turn is not None and Turn.session.is_cached(turn):
        return turn.session.workdir, turn.session.kind
    worktree = getattr(context.get("task"), "worktree_path", None)
    if isinstance(worktree, str) and worktree:
        return worktree, Session.Kind.TASK
    # Per render: a fragment of several events of one turn reads its session once.
    known: dict[int, tuple[str, str]] = cast(Any, context.render_context).setdefault("chat_content.sessions", {})
    if event.turn_id not in known:
        found = Turn.objects.filter(pk=event.turn_id).values_list("session__workdir", "session__kind").first()
        known[event.turn_id] = found or ("", Session.Kind.CHAT)
    return known[event.turn_id]


def _paths(context: template.Context, event: Event) -> PathView:
    if shared := context.get("redact"):
        return PathView(root=str(shared), shared=True)
    return PathView(root=_session_of(context, event)[0])


@register.simple_tag(takes_context=True)
def markdown(context: template.Context, text: str, complete: bool = True, event: Event | None = None) -> SafeString:
    """``text`` rendered (and sanitised) by :func:`chat.markup.render_markdown`, its paths shown as
    within the chat's folder (``event``: the answer it is); an incomplete text is still streaming,
    so what it leaves open is closed first."""
    paths = _paths(context, event) if event is not None else None
    return mark_safe(render_markdown(text or "", streaming=not complete, paths=paths))


@register.simple_tag(takes_context=True)
def allowed_where(context: template.Context, event: Event) -> str:
    """Where "Always allow" holds: the chat, or the task (a task's session is no chat)."""
    return "for this task" if _session_of(context, event)[1] == Session.Kind.TASK else "in this chat"


@register.simple_tag(takes_context=True)
def card_of(context: template.Context, event: Event) -> ToolCard:
    """The card of a tool call or of a permission prompt (both hold the tool's input)."""
    data = event.data or {}
    return tool_card(event.name or str(data.get("tool") or ""), data.get("input"), paths=_paths(context, event))


@register.simple_tag(takes_context=True)
def result_of(context: template.Context, event: Event) -> ResultCard:
    return result_card(
        str((event.data or {}).get("tool") or ""), event.text, is_error=event.is_error, paths=_paths(context, event)
    )


@register.simple_tag(takes_context=True)
def summary_of(context: template.Context, event: Event) -> str:
    """What a permission prompt's tool call does, in a few words (its path, command, pattern...)."""
    tool_input = (event.data or {}).get("input") or {}
    for name in _SUMMARY_FIELDS:
        if tool_input.get(name):
            value = _paths(context, event).text(str(tool_input[name]))
            return value if len(value) <= SUMMARY_LENGTH else value[: SUMMARY_LENGTH - 1] + "…"
    return ""
