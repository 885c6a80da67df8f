"""Services for a person's chats as a whole: create, rename, delete (with the CLI's files).

The admin uses the same functions, so a chat deleted anywhere loses its CLI files too.
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction

from drivers import claude, git, safefs
from members import audit
from runtime import Engine

from .. import projects
from ..models import TITLE_LENGTH, Session, Turn
from ..projects import Project
from . import agents, attachments, disk, turns

log = logging.getLogger(__name__)

# Seconds to wait for a warm CLI process to exit: it exits once its stdin is closed, and the Agent
# SDK ends it after about 10 s if it does not.
CLOSE_WAIT = 15.0


class ChatError(Exception):
    """A request about a chat that cannot be done; the text says why and what to do."""


def create_session(
    *,
    owner: User,
    title: str = "",
    project: Project | None = None,
    session_id: uuid.UUID | None = None,
    model: str | None = None,
) -> Session:
    """A new chat in the owner's own folder (or a shared project they may use), with a CLI config
    folder of its own and the transcript path the CLI will use there. ``model``: one of
    CLAUDE_MODELS (None: the first of them)."""
    model = default_model() if model is None else clean_model(model)
    if project is None:
        project = Project(key=projects.OWN, path=own_folder_made(owner))
    elif not project.shared and project.path == projects.own_folder(owner):
        own_folder_made(owner)  # however the chat names it (the API does), it is a repository
    project.path.mkdir(parents=True, exist_ok=True)
    session = Session(
        owner=owner, title=title[:TITLE_LENGTH], workdir=str(project.path), project=project.stored_key, model=model
    )
    if session_id is not None:
        session.id = session_id
    session.config_dir = str(agents.config_folder(owner_id=owner.pk, session_id=str(session.id)))
    session.transcript_path = str(claude.transcript_path(session.config_dir, session.workdir, str(session.id)))
    session.save(force_insert=True)
    return session


async def start_chat(
    *,
    engine: Engine,
    owner: User,
    project: Project | None,
    model: str | None,
    text: object,
    uploads: Sequence[tuple[str, IO[bytes]]] = (),
    session_id: uuid.UUID | None = None,
) -> Turn:
    """A chat made by its first message (New chat leaves no empty chats behind): the chat, the
    uploaded files in its working directory, and the message queued with them. If the message is
    refused, no chat is left and the files are removed. ``session_id``: the chat's id, if the page
    picked it (its process may have been started ahead under it); one in use is refused."""
    try:
        message = turns.validate_message(text)  # before anything is made
    except turns.TurnRefused as exc:
        raise ChatError(str(exc)) from None
    chosen = default_model() if model is None else clean_model(model)
    try:
        session = await sync_to_async(create_session)(owner=owner, project=project, model=chosen, session_id=session_id)
    except IntegrityError:
        raise ChatError("This chat exists already: open it from your chats, or start a new one.") from None
    saved: list[attachments.Saved] = []
    try:
        for name, data in uploads:
            saved.append(await sync_to_async(attachments.save)(session=session, name=name, data=data))
        return await turns.submit_message(
            engine=engine, session_id=session.id, user=owner, text=message, files=[item.path for item in saved]
        )
    except (turns.TurnRefused, attachments.AttachmentRefused) as exc:
        await sync_to_async(_discard)(session, saved, engine)
        raise ChatError(str(exc)) from None
    except Exception as exc:
        if disk.is_disk_full(exc):
            # The message was not saved: no empty chat is left, if the disk lets it go.
            with contextlib.suppress(Exception):
                await sync_to_async(_discard)(session, saved, engine)
        raise


def _discard(session: Session, saved: list[attachments.Saved], engine: Engine) -> None:
    for item in saved:
        attachments.remove(session=session, path=item.path)
    delete_session(session=session, engine=engine)


def own_folder_of(user: User) -> Path:
    """The member's own folder, made on first use, and a git repository of its own (one empty
    commit) however it was first made, so that their tasks can branch off it (never the repository
    around it). A folder that has no ``.git`` yet is made one. git runs there as the member's agents
    do, in their sandbox: the ``.git`` is theirs to change."""
    folder = projects.own_folder(user)
    folder.mkdir(parents=True, exist_ok=True)
    if not os.path.lexists(folder / ".git"):
        git.start_repository(git.Repo.at(folder, jail=agents.git_sandbox(folder)), message="Your own folder")
    return folder


def own_folder_made(user: User) -> Path:
    """The member's own folder, made for a new chat (or its memory): a chat works there even if it
    could not be made a repository now (tasks try again, and say why)."""
    try:
        return own_folder_of(user)
    except (agents.SandboxUnavailable, git.GitError) as exc:
        log.warning("the own folder of user %s is not a repository yet: %s", user.pk, exc)
        return projects.own_folder(user)


def clean_title(title: str | None) -> str:
    text = " ".join(str(title or "").split())
    if not text:
        raise ChatError("Type a title first.")
    if len(text) > TITLE_LENGTH:
        raise ChatError(f"The title is {len(text)} characters long; the limit is {TITLE_LENGTH}. Shorten it.")
    if "\x00" in text:
        raise ChatError("The title holds a NUL character, which cannot be stored. Remove it and try again.")
    return text


def rename_session(*, session: Session, title: str | None) -> Session:
    session.title = clean_title(title)
    session.save(update_fields=["title"])
    return session


def model_choices() -> list[str]:
    """The models a member may pick for a chat (CLAUDE_MODELS); empty: the CLI's default only."""
    return list(settings.CLAUDE_MODELS)


def default_model() -> str:
    choices = model_choices()
    return choices[0] if choices else ""


def clean_model(model: str | None) -> str:
    choices = model_choices()
    value = (model or "").strip()
    if not value and not choices:
        return ""
    if value not in choices:
        offered = ", ".join(choices) if choices else "none (CLAUDE_MODELS is empty: the CLI's default model)"
        raise ChatError(f"“{value}” is not a model this server offers. Pick one of: {offered}.")
    return value


def set_model(*, session: Session, model: str | None) -> Session:
    """The model the chat's next turns run with (its warm process restarts with it; the chat keeps
    its memory)."""
    if session.is_archived:
        raise ChatError("This chat is archived and read-only. Press Restore to continue it.")
    session.model = clean_model(model)
    session.save(update_fields=["model"])
    return session


def cli_files(session: Session) -> list[tuple[Path, str]]:
    """What the CLI and the archive keep for this chat, whether it exists or not, each as a folder
    of the server's and a name in it: the chat's own CLI config folder (its transcript, the folder
    the CLI keeps beside it, all else the CLI wrote for the chat) and its archive copy."""
    sid = str(session.id)
    found = []
    if session.config_dir:
        config = Path(session.config_dir)
        found.append((config.parent, config.name))
    if session.archive_path:
        archive = Path(session.archive_path)
        found.append((archive.parent, archive.name))
    # Only names of this chat's UUID: a damaged row must not point the delete elsewhere.
    return [(folder, name) for folder, name in found if name.lower().startswith(sid)]


def close_warm_process(session_id: str, *, engine: Engine, wait: bool = False) -> None:
    """Close the chat's warm CLI process, if it has one and no turn runs in it: a deleted or
    archived chat's process has no next turn to wait for. With ``wait``, return once it has
    exited, so that what the CLI writes into its transcript as it exits is there (archiving and
    restoring move that file)."""
    engine.close_warm(session=session_id, wait=CLOSE_WAIT if wait else 0.0)


def delete_session(*, session: Session, engine: Engine, actor: audit.Actor = None) -> None:
    """Delete a chat with its messages, share links, attached files and CLI transcript (``actor``:
    who did, for the audit log).

    Refused while a turn is pending: the CLI would write the transcript again. If a file
    cannot be removed, nothing is deleted.
    """
    with transaction.atomic():
        locked = Session.objects.select_for_update().get(pk=session.pk)
        if Turn.objects.filter(session=locked).pending().exists():
            raise ChatError(
                f"“{locked.display_title}” has a message running or queued. Stop it and wait "
                "for queued messages to finish, then delete the chat."
            )
        files = cli_files(locked)
        attached = attachments.stored_paths(session=locked)
        audit.record(
            actor=actor, action=audit.Action.CHAT_DELETED, obj=locked, detail=f"owned by {locked.owner.get_username()}"
        )
        locked.delete()
        close_warm_process(str(session.pk), engine=engine)
        for folder, name in files:
            try:
                # The config folder's contents are the agent's: removed without following any link
                # in it, so a link to the server's files loses the link, never its target.
                safefs.remove_tree(folder, name)
            except OSError as exc:
                log.error("could not remove %s of chat %s: %s", folder / name, session.pk, exc)
                raise ChatError(
                    f"“{locked.display_title}” was not deleted: the server could not remove its "
                    f"Claude Code transcript ({exc.strerror or exc}). Tell an admin."
                ) from exc
    # Its attached files go too: they no longer count toward what the member may store.
    for name in attached:
        attachments.remove(session=locked, path=name)
