"""The websockets of a chat: its owner's page (send a message, stop or cancel a turn, receive HTML
fragments), the New chat page (its first message makes the chat, which then comes in place of the
page over the same socket) and a share link's page (read the chat as it goes on, nothing more).

While its member types, a chat's page has the chat's process started ahead (``typing``, sent once
by the page's first keystroke; see :mod:`chat.services.ahead`), so that the message finds it warm."""

from __future__ import annotations

import re
import time
import uuid
from collections import Counter
from datetime import datetime
from typing import Any

from django.conf import settings
from django.template.loader import render_to_string
from django.utils import timezone

from chat import projects, selectors
from chat.live import catchup, fragments, notify, rendered
from chat.models import Session, ShareLink
from chat.services import ahead, attachments, chats, commands, disk, history, mcp, plans, sharing, slash, turns
from members import roles

from .sockets import CLOSE_NOT_FOUND, CLOSE_TOO_MANY, MAX_FRAME_BYTES, MemberSocket, Socket, in_pool

# A share link that was revoked or expired while its page was open.
CLOSE_LINK_GONE = 4410
# A page asks for its chat's process ahead at most this often (it asks once per keystroke burst).
AHEAD_EVERY_SECONDS = 2.0
# A form's CSRF token as Django makes it (the page sends its own back with its first message).
CSRF_TOKEN = re.compile(r"[A-Za-z0-9]{32,64}")


@in_pool
def _owned_session(user: Any, session_id: uuid.UUID) -> Session | None:
    return Session.objects.filter(pk=session_id, owner=user).first()


_catch_up = in_pool(catchup.catch_up)


@in_pool
def _session(session_id: uuid.UUID) -> Session | None:
    return Session.objects.filter(pk=session_id).first()


@in_pool
def _chat_page(session: Session, user: Any, csrf_token: str) -> tuple[str, int, int]:
    """The chat's page (all of it but the socket's element), to put in place of the New chat page:
    the HTML, and the last turn and event it shows. ``csrf_token``: the New chat page's own (its
    forms post without JavaScript too)."""
    page = selectors.latest_turns(session=session, events=False)
    rendered.prerender(page.turns)
    context = {
        "session": session,
        "turns": page.turns,
        "has_older": page.has_older,
        "may_answer": True,
        "may_run": roles.may_run(user),
        "user": user,
        "models": settings.CLAUDE_MODELS,
        "max_message_chars": settings.CLAUDE_MAX_MESSAGE_CHARS,
        "max_frame_bytes": MAX_FRAME_BYTES,
        "max_attachment_bytes": attachments.max_bytes(),
        "csrf_token": csrf_token,
        # The message box's menu and the todo panel, as the chat's own page has them.
        "commands": slash.offered(session),
        "todos": session.todos or [],
        "mcp_servers": mcp.panel(session),
    }
    html = render_to_string("chat/session.html#chat-inner", context)
    return (
        f'<div hx-swap-oob="innerHTML:#chat">{html}</div>',
        max((turn.pk for turn in page.turns), default=0),
        selectors.last_event_id(turn_ids=[turn.pk for turn in page.turns]),
    )


_project_for = in_pool(projects.project_for)


class ChatConsumer(MemberSocket):
    """A chat's page: only its owner connects, and answers its prompts."""

    session_id: uuid.UUID
    may_answer = True
    # The last turn and event the page shows: a fragment appending one of these again is dropped.
    shown_turn = shown_event = 0
    ahead_at = 0.0  # when the page last had the chat's process started ahead

    async def connect(self) -> None:
        if not await self.admit():
            return
        self.session_id = uuid.UUID(self.scope["url_route"]["kwargs"]["session_id"])
        session = await _owned_session(self.scope["user"], self.session_id)
        if session is None:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        await self.opened(session)

    async def opened(self, session: Session) -> None:
        await self.join(notify.chat_group(self.session_id))
        await self.accept()
        # The page says what it shows; it gets what it missed, often nothing but the chat's state.
        caught_up = await _catch_up(
            session=session, since=catchup.Since.parse(self.scope.get("query_string", b"")), may_answer=self.may_answer
        )
        self.shown_turn, self.shown_event = caught_up.turn, caught_up.event
        await self.send(text_data=caught_up.html)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        data = await self.read_frame(text_data)
        if data is None or not await self.still_member():
            return
        match data.get("action"):
            case "stop":
                await self.stop()
            case "cancel":
                await self.cancel(data.get("turn"))
            case "permission":
                await self.answer_prompt(data)
            case "typing":
                await self.typing(data)
            case "run_plan":
                await self.run_plan(data.get("event"))
            case "rewind" | "rewind_files" | "fork" as action:
                await self.go_back(action, data.get("turn"))
            case None:
                await self.message(data)
            case _:
                await self.send(text_data=fragments.flash("The server could not read that request; reload the page."))

    async def stop(self) -> None:
        if not await turns.stop_turn(engine=self.engine, session_id=self.session_id):
            await self.send(text_data=fragments.flash("Nothing is running in this chat.", level="info"))

    async def cancel(self, turn_id: object) -> None:
        if not isinstance(turn_id, int | str) or not str(turn_id).isdigit():
            await self.send(text_data=fragments.flash("The server could not read that request; reload the page."))
            return
        if not await turns.cancel_turn(engine=self.engine, session_id=self.session_id, turn_id=int(turn_id)):
            await self.send(text_data=fragments.flash("That message has started or ended already.", level="info"))

    async def typing(self, data: dict[str, Any]) -> None:
        """The member started typing: the chat's next turn will want its process."""
        now = time.monotonic()
        if now - self.ahead_at >= AHEAD_EVERY_SECONDS:
            self.ahead_at = now
            await ahead.start_ahead(engine=self.engine, session_id=self.session_id, owner=self.scope["user"])

    async def run_plan(self, event_id: object) -> None:
        if not isinstance(event_id, int | str) or not str(event_id).isdigit():
            await self.send(text_data=fragments.flash("The server could not read that request; reload the page."))
            return
        try:
            await plans.run_plan(
                engine=self.engine, session_id=self.session_id, user=self.scope["user"], event_id=int(event_id)
            )
        except (plans.PlanRefused, turns.TurnRefused) as exc:
            await self.send(text_data=fragments.flash(str(exc)))

    async def go_back(self, action: str, turn_id: object) -> None:
        """Rewind the chat to a turn, or fork a new chat from it."""
        if not isinstance(turn_id, int | str) or not str(turn_id).isdigit():
            await self.send(text_data=fragments.flash("The server could not read that request; reload the page."))
            return
        user = self.scope["user"]
        try:
            if action in ("rewind", "rewind_files"):
                said = await history.rewind(
                    engine=self.engine,
                    session_id=self.session_id,
                    user=user,
                    turn_id=int(turn_id),
                    files=action == "rewind_files",
                )
                await self.send(text_data=fragments.flash(said, level="info"))
            else:
                fork = await history.fork(session_id=self.session_id, user=user, turn_id=int(turn_id))
                said = "A new chat continues from that message; this one stays as it is."
                await self.send(text_data=fragments.flash(said, level="info", url=fork.get_absolute_url()))
        except history.HistoryRefused as exc:
            await self.send(text_data=fragments.flash(str(exc)))

    async def message(self, data: dict[str, Any]) -> None:
        """A message, sent as text, or as the slash command ``chosen`` from the box's menu."""
        try:
            done = await commands.submit(
                engine=self.engine,
                session_id=self.session_id,
                user=self.scope["user"],
                text=turns.validate_message(data.get("message")),
                files=data.get("attachments"),
                chosen=bool(data.get("command")),
            )
            if done.said:
                await self.send(text_data=fragments.flash(done.said, level="info", url=done.url))
        except turns.TurnRefused as exc:
            await self.send(text_data=fragments.flash(str(exc), refused=True))
        except Session.DoesNotExist:
            await self.close(code=CLOSE_NOT_FOUND)
        except Exception as exc:
            if (full := disk.explain(exc, what="your message")) is None:
                raise
            await self.send(text_data=fragments.flash(full, refused=True))

    async def live_fragment(self, event: dict[str, Any]) -> None:
        if _new_to(self, event):
            await self.send(text_data=event["html"])

    async def prompt_shown(self, message: dict[str, str]) -> None:
        # A prompt opened before the page connected came with the catch-up already.
        if message["added"] and int(message["event"]) <= self.shown_event:
            return
        await super().prompt_shown(message)


class NewChatConsumer(ChatConsumer):
    """The New chat page, for the chat of the id the page was given: the chat does not exist until
    the first message sent here makes it (with that id); the chat's page then comes in place of
    the New chat page, and this socket is the chat's from then on (also when it reconnects). An id
    that is another member's chat closes it, as a chat page of someone else's would."""

    made = False

    async def connect(self) -> None:
        if not await self.admit():
            return
        self.session_id = uuid.UUID(self.scope["url_route"]["kwargs"]["session_id"])
        session = await _session(self.session_id)
        if session is not None and session.owner_id != self.member_id:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        if session is not None:
            self.made = True
            await self.opened(session)
            return
        # The chat's fragments come from the moment the first message makes it.
        await self.join(notify.chat_group(self.session_id))
        await self.accept()

    async def typing(self, data: dict[str, Any]) -> None:
        if self.made:
            await super().typing(data)
            return
        now = time.monotonic()
        if now - self.ahead_at < AHEAD_EVERY_SECONDS:
            return
        self.ahead_at = now
        try:
            model = chats.default_model() if data.get("model") is None else chats.clean_model(str(data["model"]))
        except chats.ChatError:
            return  # the message will say so
        new = ahead.NewChat(project=str(data.get("project") or ""), model=model)
        await ahead.start_ahead(engine=self.engine, session_id=self.session_id, owner=self.scope["user"], new=new)

    async def message(self, data: dict[str, Any]) -> None:
        if self.made:
            await super().message(data)
            return
        user = self.scope["user"]
        try:
            project = await _project_for(user, str(data.get("project") or ""))
            model = data.get("model")
            turn = await chats.start_chat(
                engine=self.engine,
                owner=user,
                project=project if project.shared else None,
                model=str(model) if model is not None and chats.model_choices() else None,
                text=data.get("message"),
                session_id=self.session_id,
            )
        except (projects.ProjectRefused, chats.ChatError) as exc:
            await self.send(text_data=fragments.flash(str(exc), refused=True))
            return
        except Exception as exc:
            if (full := disk.explain(exc, what="your message")) is None:
                raise
            await self.send(text_data=fragments.flash(full, refused=True))
            return
        self.made = True
        # The chat in place of this page, with what it shows so far; what the turn sent meanwhile is
        # dispatched to this socket after this (one message at a time), and what the page has is dropped.
        token = data.get("csrfmiddlewaretoken")
        token = token if isinstance(token, str) and CSRF_TOKEN.fullmatch(token) else ""
        html, self.shown_turn, self.shown_event = await _chat_page(turn.session, user, token)
        await self.send(text_data=html)


def _new_to(socket: ChatConsumer | ShareConsumer, event: dict[str, Any]) -> bool:
    """Whether a fragment is new to the socket's page: one saved before it was sent may have come
    with the catch-up on connect already."""
    turn: int = event.get("turn", socket.shown_turn + 1)
    shown: int = event.get("event", socket.shown_event + 1)
    return turn > socket.shown_turn and shown > socket.shown_event


_readers: Counter[int] = Counter()
_live_link = in_pool(sharing.live_link)
_for_reader = in_pool(fragments.for_reader)


class ShareConsumer(Socket):
    """The page a share link opens, whoever holds the link (no login): it follows that one chat
    live, as the page shows it, rendered for a reader (no buttons, the server's paths hidden), never
    the owner's HTML. It sends nothing: a frame it gets is ignored. It closes when the link is
    revoked or expires; a link may have CLAUDE_MAX_SOCKETS_PER_MEMBER pages open in this process."""

    link_id: int | None = None
    session_id: uuid.UUID
    reader: fragments.Reader
    expires_at: datetime | None = None
    shown_turn = shown_event = 0

    async def connect(self) -> None:
        link: ShareLink | None = await _live_link(token=self.scope["url_route"]["kwargs"]["token"])
        if link is None:
            await self.close(code=CLOSE_LINK_GONE)
            return
        if _readers[link.pk] >= settings.CLAUDE_MAX_SOCKETS_PER_MEMBER:
            await self.close(code=CLOSE_TOO_MANY)
            return
        self.link_id, self.expires_at, self.session_id = link.pk, link.expires_at, link.session_id
        _readers[link.pk] += 1
        self.reader = fragments.Reader(token=self.scope["url_route"]["kwargs"]["token"], workdir=link.session.workdir)
        # Only this link's chat: its fragments, its prompts, and the link's revocation.
        for group in (notify.chat_group(self.session_id), notify.link_group(link.pk)):
            await self.join(group)
        await self.accept()
        caught_up = await _catch_up(
            session=link.session,
            since=catchup.Since.parse(self.scope.get("query_string", b"")),
            may_answer=False,
            reader=self.reader,
        )
        self.shown_turn, self.shown_event = caught_up.turn, caught_up.event
        await self.send(text_data=caught_up.html)

    async def disconnect(self, code: int) -> None:
        # Its groups were left by the base (Socket.websocket_disconnect).
        if self.link_id is not None:
            _readers[self.link_id] -= 1
            if _readers[self.link_id] <= 0:
                del _readers[self.link_id]
            self.link_id = None

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        pass  # a reader's page sends nothing; whatever comes is not read

    async def _gone(self) -> bool:
        if self.expires_at is not None and self.expires_at <= timezone.now():
            await self.close(code=CLOSE_LINK_GONE)
            return True
        return False

    async def live_fragment(self, event: dict[str, Any]) -> None:
        # Never the owner's HTML: what changed, rendered again for a reader.
        if not event.get("shown") or await self._gone() or not _new_to(self, event):
            return
        html = await _for_reader(event["shown"], event["pk"], session_id=self.session_id, reader=self.reader)
        if html:
            await self.send(text_data=html)

    async def prompt_shown(self, message: dict[str, str]) -> None:
        added = bool(message["added"])
        if (added and int(message["event"]) <= self.shown_event) or await self._gone():
            return
        shown = "event_added" if added else "event_changed"
        html = await _for_reader(shown, message["event"], session_id=self.session_id, reader=self.reader)
        if html:
            await self.send(text_data=html)

    async def link_revoked(self, message: dict[str, str]) -> None:
        await self.close(code=CLOSE_LINK_GONE)
