"""The one place that sends live fragments to the pages that watch (through the channel layer).

Every page's websocket consumer joins groups and forwards ``live.fragment`` messages as they
come; services call the functions here after they saved a change.

A chat's fragments are rendered once, for its owner's pages. Each message also says what changed
(``shown``: ``turn_added``, ``event_changed``, ... and the ``pk`` of that turn, event or chat), so a
page that must see it otherwise (a share link's reader: no buttons, no server paths) renders it
for itself from the database instead of forwarding the owner's HTML.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer

from .. import selectors
from ..models import Event, Session, Turn
from . import fragments, rendered

MESSAGE_TYPE = "live.fragment"
# A permission prompt differs per viewer (only who may answer gets the buttons): each socket renders it.
PROMPT_TYPE = "prompt.shown"
# A share link was revoked: its readers' sockets close.
LINK_REVOKED = "link.revoked"


def chat_group(session_id: uuid.UUID | str) -> str:
    return f"chat-{session_id}"


def member_group(user_id: int) -> str:
    """Every socket of one member: their pages' sidebar, and closing them all at logout."""
    return f"member-{int(user_id)}"


def link_group(link_id: int) -> str:
    """The sockets of the pages one share link opened."""
    return f"share-link-{int(link_id)}"


async def send(group: str, html: str, *, shown: str = "", pk: int | str = "", **appends: int) -> None:
    """Send ``html`` to every socket in ``group``. ``appends`` names the turn or event the html
    appends to the page (``turn=``, ``event=``): a socket whose page already got it when it
    connected drops it rather than show it twice. ``shown`` and ``pk`` say what changed, for the
    sockets that render it themselves."""
    layer = get_channel_layer()
    if layer is not None and html:
        message: dict[str, Any] = {"type": MESSAGE_TYPE, "html": html, **appends}
        if shown:
            message.update(shown=shown, pk=str(pk))
        await layer.group_send(group, message)


async def signal(group: str, message_type: str, **payload: str) -> None:
    """Tell every socket in ``group`` that something changed; each renders what its person may see."""
    layer = get_channel_layer()
    if layer is not None:
        await layer.group_send(group, {"type": message_type, **payload})


async def to_chat(session_id: uuid.UUID | str, html: str, **appends: Any) -> None:
    await send(chat_group(session_id), html, **appends)


async def turn_added(turn: Turn, session: Session, *, listed: bool = True) -> None:
    """``listed``: also send the member's list of chats (else the caller does, when it suits it)."""
    html = await sync_to_async(lambda: fragments.turn_appended(turn, session) + fragments.session_state(session))()
    await to_chat(session.pk, html, turn=turn.pk, shown="turn_added", pk=turn.pk)
    if listed:
        await chats_changed(session)


async def turn_changed(turn: Turn, session: Session, *, listed: bool = False) -> None:
    """``listed``: the chat's status in the member's list changed with it (the sidebar shows it)."""
    html = await sync_to_async(lambda: fragments.turn_status(turn, session) + fragments.session_state(session))()
    await to_chat(session.pk, html, shown="turn_changed", pk=turn.pk)
    if listed:
        await chats_changed(session)
    if not turn.is_pending:
        # Rendered now, off any request: the next page that shows the finished turn reuses it.
        await sync_to_async(rendered.remember)(turn)


async def _prompt(event: Event, session_id: uuid.UUID | str, *, added: bool) -> None:
    """A permission prompt differs only in whether its viewer may answer: both views are rendered
    once here, and each socket sends the one for its person."""
    views = await sync_to_async(fragments.prompt_views)(event, added=added)
    await signal(chat_group(session_id), PROMPT_TYPE, event=str(event.pk), added="1" if added else "", **views)


async def event_added(event: Event, session_id: uuid.UUID | str) -> None:
    if event.kind == Event.Kind.PERMISSION:
        await _prompt(event, session_id, added=True)
        return
    html = await sync_to_async(fragments.event_appended)(event)
    await to_chat(session_id, html, event=event.pk, shown="event_added", pk=event.pk)


async def event_changed(event: Event, session_id: uuid.UUID | str) -> None:
    if event.kind == Event.Kind.PERMISSION:
        await _prompt(event, session_id, added=False)
        return
    await to_chat(session_id, await sync_to_async(fragments.event_replaced)(event), shown="event_changed", pk=event.pk)


async def session_changed(session: Session) -> None:
    """The chat's title, state or model changed (a rename, a Restore, another model)."""
    html = await sync_to_async(fragments.session_state)(session)
    await to_chat(session.pk, html, shown="session_changed", pk=str(session.pk))
    await chats_changed(session)


async def todos_changed(session: Session, todos: Sequence[object]) -> None:
    """The agent's todo list (its owner's pages)."""
    await to_chat(session.pk, await sync_to_async(fragments.todo_panel)(session, todos))


async def mcp_changed(session: Session, rows: Sequence[object]) -> None:
    """The chat's MCP servers: on or off, their status and tools (its owner's pages)."""
    await to_chat(session.pk, await sync_to_async(fragments.mcp_panel)(session, rows))


async def memory_changed(session: Session) -> None:
    """The memory files the chat's agent read (its owner's pages)."""
    await to_chat(session.pk, await sync_to_async(fragments.memory_note)(session))


async def context_changed(session: Session) -> None:
    """How full the chat's context window is (its owner's pages; a share page does not show it)."""
    await to_chat(session.pk, await sync_to_async(fragments.context_meter)(session))


async def chats_changed(session: Session) -> None:
    """The member's recent chats, as the sidebar of each of their open pages shows them."""
    if session.kind != Session.Kind.CHAT:
        return  # a task's session is not in the list
    await send(member_group(session.owner_id), await sync_to_async(_recent_with)(session))


def _recent_with(session: Session) -> str:
    """The member's recent chats, if ``session`` is among them (else the sidebar shows nothing of it)."""
    chats = list(selectors.recent_chats(user_id=session.owner_id))
    return fragments.recent_chats(chats) if any(chat.pk == session.pk for chat in chats) else ""


async def links_revoked(link_ids: list[int]) -> None:
    for link_id in link_ids:
        await signal(link_group(link_id), LINK_REVOKED)
