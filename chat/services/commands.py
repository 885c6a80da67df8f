"""Running the slash command a person chose from the message box's menu (see :mod:`.slash`).

The CLI's commands and the project's run as a turn marked with the command; ``/model`` and
``/clear`` are done by the app, and each says what it did. A message whose command is not offered
(an unknown name, arguments to one that takes none) is sent as text, as a typed one is.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.urls import reverse

from runtime import Engine

from .. import projects
from ..live import notify
from ..models import TITLE_LENGTH, Event, Session, Turn
from . import chats, slash, turns

SUMMARY_TURNS = 20
SUMMARY_PROMPT_CHARS = 400
SUMMARY_ANSWER_CHARS = 800


@dataclass(frozen=True)
class Done:
    """What a command did, said on the page; ``turn``: the turn it runs as; ``url``: where it leads."""

    said: str = ""
    turn: Turn | None = None
    url: str = ""


async def submit(
    *, engine: Engine, session_id: uuid.UUID, user: User, text: str, files: object = None, chosen: bool
) -> Done:
    """Send a message from the chat page: as the command chosen from the menu (``chosen``) if the
    chat offers it, else as text."""
    session = await Session.objects.aget(pk=session_id, owner=user)
    found = await sync_to_async(slash.chosen)(text, session) if chosen else None
    if found is None:
        return Done(
            turn=await turns.submit_message(engine=engine, session_id=session_id, user=user, text=text, files=files)
        )
    command, arguments = found
    if command.name == "model":
        return await _model(session, arguments)
    if command.name == "clear":
        return await _clear(engine=engine, session=session, user=user)
    turn = await turns.submit_message(
        engine=engine, session_id=session_id, user=user, text=text, files=files, command=command.name
    )
    return Done(turn=turn)


async def _model(session: Session, name: str) -> Done:
    if not name:
        offered = ", ".join(chats.model_choices())
        uses = session.model or "the CLI's default model"
        if not offered:
            return Done(said=f"This chat uses {uses}; this server offers no other (CLAUDE_MODELS is empty).")
        return Done(said=f"This chat uses {uses}. Offered: {offered}. Switch with /model NAME or the picker.")
    try:
        session = await sync_to_async(chats.set_model)(session=session, model=name)
    except chats.ChatError as exc:
        raise turns.TurnRefused(str(exc)) from None
    await notify.session_changed(session)
    return Done(said=f"The next messages use {session.model}.")


def summary_of(session: Session) -> str:
    """What a new chat needs of this one: its latest exchanges, each prompt and the answer's last
    words, shortened. Read from the database: no model is asked, nothing of the CLI's is read."""
    latest = list(
        Turn.objects.filter(session=session, status=Turn.Status.DONE)
        .exclude(command__in=("cost", "context"))
        .order_by("-created_at", "-id")[:SUMMARY_TURNS]
    )
    lines = []
    for turn in reversed(latest):
        answer = (
            Event.objects.filter(turn=turn, kind=Event.Kind.TEXT).order_by("-id").values_list("text", flat=True).first()
            or ""
        )
        lines.append(f"- The person: {_short(turn.prompt, SUMMARY_PROMPT_CHARS)}")
        if answer:
            lines.append(f"  You answered: {_short(answer, SUMMARY_ANSWER_CHARS)}")
    said = "\n".join(lines) or "- (nothing was said yet)"
    return (
        f"We continue an earlier chat (“{session.display_title}”). Its latest exchanges, shortened:\n\n{said}\n\n"
        "Take this as what we talked about so far, and wait for my next message."
    )


def _short(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


async def _clear(*, engine: Engine, session: Session, user: User) -> Done:
    """``/clear``: a new chat whose first message carries a summary of this one (this one stays)."""
    try:
        project = await sync_to_async(projects.project_for)(user, session.project or None)
    except projects.ProjectRefused as exc:
        raise turns.TurnRefused(str(exc)) from None
    text = await sync_to_async(summary_of)(session)
    try:
        turn = await chats.start_chat(
            engine=engine, owner=user, project=project, model=session.model or None, text=text
        )
    except chats.ChatError as exc:
        raise turns.TurnRefused(str(exc)) from None
    # Named after this chat, not after the summary's first words.
    new = await Session.objects.aget(pk=turn.session_id)
    new.title = f"{session.display_title} (continued)"[:TITLE_LENGTH]
    await new.asave(update_fields=["title"])
    await notify.session_changed(new)
    url = reverse("chat:session", kwargs={"session_id": turn.session_id})
    return Done(said="A new chat continues from a summary of this one; this chat stays as it is.", turn=turn, url=url)
