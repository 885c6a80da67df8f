"""Services for a person's chats as a whole: the list and its search, older turns, rename, delete.

The admin uses the same functions, so a chat deleted anywhere loses its CLI files too.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Substr

from . import cli
from .models import TITLE_LENGTH, Event, Session, SessionQuerySet, ShareLink, Turn

log = logging.getLogger(__name__)

# A chat page shows this many of the latest turns; older ones load on demand.
RECENT_TURNS = 50
PREVIEW_CHARS = 300


class ChatError(Exception):
    """A request about a chat that cannot be done; the text says why and what to do."""


# ---------------------------------------------------------------------------------------
# The list


def chat_list(*, user, query: str = "") -> SessionQuerySet:
    """The person's chats, newest activity first, with what a row of the list shows."""
    latest_turn = Turn.objects.filter(session=OuterRef("pk")).order_by("-created_at", "-id")
    latest_text = Event.objects.filter(turn=OuterRef("last_turn_id"), kind=Event.Kind.TEXT).order_by("-id")
    chats = (
        Session.objects.owned_by(user)
        .annotate(
            last_turn_id=Subquery(latest_turn.values("id")[:1]),
            last_prompt=Subquery(latest_turn.annotate(cut=Substr("prompt", 1, PREVIEW_CHARS)).values("cut")[:1]),
            shared=Exists(ShareLink.objects.live().filter(session=OuterRef("pk"))),
        )
        .annotate(last_text=Subquery(latest_text.annotate(cut=Substr("text", 1, PREVIEW_CHARS)).values("cut")[:1]))
        .order_by("-last_activity_at", "-created_at")
    )
    return search(chats, query=query)


def search(chats: SessionQuerySet, *, query: str) -> SessionQuerySet:
    """Chats whose title, prompts or assistant text contain every word of the query."""
    for word in query.split():
        in_prompts = Turn.objects.filter(session=OuterRef("pk"), prompt__icontains=word)
        in_answers = Event.objects.filter(turn__session=OuterRef("pk"), kind=Event.Kind.TEXT, text__icontains=word)
        chats = chats.filter(Q(title__icontains=word) | Exists(in_prompts) | Exists(in_answers))
    return chats


# ---------------------------------------------------------------------------------------
# Turns of one chat, latest first in pages


def _before(turn: Turn) -> Q:
    return Q(created_at__lt=turn.created_at) | Q(created_at=turn.created_at, id__lt=turn.id)


def latest_turns(*, session: Session, before: Turn | None = None, limit: int = RECENT_TURNS) -> list[Turn]:
    """Up to ``limit`` turns (before ``before`` if given), oldest first, with their events."""
    turns: QuerySet[Turn] = Turn.objects.filter(session=session)
    if before is not None:
        turns = turns.filter(_before(before))
    recent = turns.order_by("-created_at", "-id").select_related("author").prefetch_related("events")[:limit]
    return list(recent)[::-1]


def has_older_turns(turn: Turn) -> bool:
    return Turn.objects.filter(session_id=turn.session_id).filter(_before(turn)).exists()


# ---------------------------------------------------------------------------------------
# Rename and delete


def clean_title(title: object) -> str:
    text = " ".join(str(title or "").split())
    if not text:
        raise ChatError("Type a title first.")
    if len(text) > TITLE_LENGTH:
        raise ChatError(f"The title is {len(text)} characters long; the limit is {TITLE_LENGTH}. Shorten it.")
    return text


def rename_session(*, session: Session, title: object) -> Session:
    session.title = clean_title(title)
    session.save(update_fields=["title"])
    return session


def cli_files(session: Session) -> list[Path]:
    """The files the CLI and the archive keep for this chat, whether they exist or not."""
    sid = str(session.id)
    transcript = (Path(session.transcript_path) if session.transcript_path
                  else cli.transcript_path(settings.CLAUDE_CONFIG_DIR, session.workdir, sid))
    # The CLI keeps subagent transcripts and large tool results in a folder named like the session.
    paths = [transcript, transcript.with_suffix("")]
    if session.archive_path:
        paths.append(Path(session.archive_path))
    # Only files named after this chat's UUID: a damaged row must not point the delete elsewhere.
    return [path for path in paths if path.name.lower().startswith(sid)]


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def delete_session(*, session: Session) -> None:
    """Delete a chat with its messages, share links and CLI transcript.

    Refused while a turn is pending: the CLI would write the transcript again. If a file
    cannot be removed, nothing is deleted.
    """
    with transaction.atomic():
        locked = Session.objects.select_for_update().get(pk=session.pk)
        if Turn.objects.filter(session=locked).pending().exists():
            raise ChatError(f"“{locked.display_title}” has a message running or queued. Stop it and wait "
                            "for queued messages to finish, then delete the chat.")
        files = cli_files(locked)
        locked.delete()
        for path in files:
            try:
                _remove(path)
            except OSError as exc:
                log.error("could not remove %s of chat %s: %s", path, session.pk, exc)
                raise ChatError(f"“{locked.display_title}” was not deleted: the server could not remove its "
                                f"Claude Code transcript ({exc.strerror or exc}). Tell an admin.") from exc
