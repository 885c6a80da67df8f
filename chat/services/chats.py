"""Services for a person's chats as a whole: create, rename, delete (with the CLI's files).

The admin uses the same functions, so a chat deleted anywhere loses its CLI files too.
"""

from __future__ import annotations

import logging
import shutil
import uuid
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction

from drivers import claude, git

from .. import projects
from ..models import TITLE_LENGTH, Session, Turn
from ..projects import Project
from . import agents

log = logging.getLogger(__name__)


class ChatError(Exception):
    """A request about a chat that cannot be done; the text says why and what to do."""


def create_session(*, owner: User, title: str = "", project: Project | None = None,
                   session_id: uuid.UUID | None = None) -> Session:
    """A new chat in the owner's own folder (or a shared project they may use), with a CLI config
    folder of its own and the transcript path the CLI will use there."""
    project = project or Project(key=projects.OWN, path=own_folder_of(owner))
    project.path.mkdir(parents=True, exist_ok=True)
    session = Session(owner=owner, title=title[:TITLE_LENGTH], workdir=str(project.path), project=project.stored_key)
    if session_id is not None:
        session.id = session_id
    session.config_dir = str(agents.config_folder(owner_id=owner.pk, session_id=str(session.id)))
    session.transcript_path = str(claude.transcript_path(session.config_dir, session.workdir, str(session.id)))
    session.save(force_insert=True)
    return session


def own_folder_of(user: User) -> Path:
    """The member's own folder, made on first use as a git repository of its own (one empty
    commit), so that their tasks can branch off it; never the repository around it."""
    folder = projects.own_folder(user)
    if not folder.exists():
        git.start_repository(folder, message="Your own folder")
    elif settings.DEMO_MODE and not git.is_toplevel_now(folder):
        # A demo's folder made before own folders started as repositories: tasks would refuse it
        # (or, without that check, use the repository around it). The demo makes it one of its own.
        git.start_repository(folder, message="Your own folder")
    return folder


def clean_title(title: str | None) -> str:
    text = " ".join(str(title or "").split())
    if not text:
        raise ChatError("Type a title first.")
    if len(text) > TITLE_LENGTH:
        raise ChatError(f"The title is {len(text)} characters long; the limit is {TITLE_LENGTH}. Shorten it.")
    return text


def rename_session(*, session: Session, title: str | None) -> Session:
    session.title = clean_title(title)
    session.save(update_fields=["title"])
    return session


def cli_files(session: Session) -> list[Path]:
    """The files the CLI and the archive keep for this chat, whether they exist or not."""
    sid = str(session.id)
    transcript = Path(session.transcript_path)
    # The CLI keeps subagent transcripts and large tool results in a folder named like the session.
    paths = [transcript, transcript.with_suffix("")]
    if session.config_dir:
        paths.append(Path(session.config_dir))  # the chat's own CLI folder, named by its UUID
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
