"""Archiving idle chats: their CLI transcript moves, gzipped, out of the CLI's projects folder.

The messages stay in the database, so an archived chat stays readable. Every move is
copy, verify, then delete: a failure at any step leaves the chat as it was (source intact,
no partial copy). Restoring is the same move in the other direction, so the chat continues
with its memory (``--resume`` finds the transcript where the CLI left it). The files are
moved by :mod:`.packing`, which never follows a link the chat's agent made.
"""

from __future__ import annotations

import gzip
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from drivers import safefs
from members import audit
from runtime import Engine

from ..models import Session, Turn
from . import chats
from .packing import (
    PACK_ERRORS,
    ArchiveError,
    Packed,
    Transcript,
    pack,
    problem,
    put_back,
    same_as_archive,
    sync_folder,
)

__all__ = ["ArchiveError", "archive_session", "keep_sessions", "kept", "restore_session"]


# Sessions another app holds back from archiving, with why: the tasks app keeps the session of a task
# whose work is not merged or discarded yet (it would lose its transcript, and with it its Merge).
# A keeper gets session ids and returns those it keeps, each with a sentence saying why.
Keeper = Callable[[Collection[uuid.UUID]], dict[uuid.UUID, str]]
_keepers: list[Keeper] = []


def keep_sessions(keeper: Keeper) -> None:
    """Register ``keeper`` (once, when its app is ready): :func:`archive_session` and
    ``expire_sessions`` leave the sessions it keeps alone."""
    if keeper not in _keepers:
        _keepers.append(keeper)


def kept(session_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, str]:
    """The sessions among ``session_ids`` that must not be archived, each with why."""
    found: dict[uuid.UUID, str] = {}
    for keeper in _keepers:
        found.update(keeper(session_ids))
    return found


@dataclass(frozen=True)
class ArchiveResult:
    session_id: str
    archive_path: Path | None  # None: there was no transcript to move
    size: int = 0  # bytes of the transcript
    already: bool = False  # it was archived before: nothing was done


@dataclass(frozen=True)
class RestoreResult:
    session_id: str
    transcript_path: Path | None  # None: the chat had no transcript
    already: bool = False
    warning: str = ""


def transcript_of(session: Session) -> Transcript:
    """Where the CLI keeps this chat's transcript: a name beneath its CLI config folder."""
    return Transcript.at(config_dir=session.config_dir, path=session.transcript_path)


def archive_file_for(session: Session) -> Path:
    return archive_file_of(session.id)


def archive_file_of(session_id: uuid.UUID) -> Path:
    # Named by the UUID only: nothing a person typed ever becomes part of a path.
    return Path(settings.CLAUDE_ARCHIVE_DIR) / f"{session_id}.jsonl.gz"


def _has_pending_turn(session_id: uuid.UUID) -> bool:
    return Turn.objects.filter(session_id=session_id, status__in=Turn.PENDING).exists()


# ---------------------------------------------------------------------------------------
# Services


def archive_session(*, session: Session, engine: Engine, actor: audit.Actor = None) -> ArchiveResult:
    """Move the chat's transcript into the archive folder and mark the chat archived.

    Raises :class:`ArchiveError` (chat unchanged) if a turn is pending or a file step fails, or
    if the transcript (or a folder on its way) is a link or not a regular file. Archiving an
    archived chat does nothing.
    """
    sid = str(session.id)
    if Session.objects.filter(pk=session.pk, archived_at__isnull=False).exists():
        return ArchiveResult(session_id=sid, archive_path=None, already=True)
    if _has_pending_turn(session.pk):
        raise ArchiveError("a turn is running or queued in it; try again once it has finished")
    if reason := kept([session.pk]).get(session.pk):
        raise ArchiveError(reason)
    # Its warm process has no next turn, and as it exits the CLI writes into its transcript: closed
    # first, so that what it writes is archived too and nothing writes there afterwards. The turn
    # after a Restore starts a new one, which resumes the restored transcript.
    chats.close_warm_process(sid, engine=engine, wait=True)
    source = transcript_of(session)
    target = archive_file_for(session)
    try:
        packed = pack(source=source, target=target, session_id=sid)
        if packed is not None:
            sync_folder(target.parent, files_too=False)  # the copy itself was fsync'd
    except safefs.UnsafePath as exc:
        raise ArchiveError(problem(exc)) from exc
    except PACK_ERRORS as exc:
        raise ArchiveError(f"could not write the archive copy: {problem(exc)}") from exc
    removed = False
    try:
        with transaction.atomic():
            locked = Session.objects.select_for_update().get(pk=session.pk)
            # Checked again under the lock: a message sent meanwhile must not be lost.
            if locked.is_archived:
                # Another run archived it meanwhile; its archive file is the one just written.
                return ArchiveResult(session_id=sid, archive_path=None, already=True)
            if _has_pending_turn(session.pk):
                raise ArchiveError("a message was sent to it while it was being archived; try again later")
            locked.archived_at = timezone.now()
            locked.archive_path = str(target) if packed is not None else ""
            locked.status = Session.Status.ARCHIVED
            locked.save(update_fields=["archived_at", "archive_path", "status"])
            if packed is not None:
                # Last step inside the transaction: if it fails, the chat stays unarchived.
                if not packed.remove_source():
                    raise ArchiveError("its transcript changed while it was being archived; try again later")
                removed = True
    except BaseException as exc:
        if packed is not None:
            undo_archive(packed, removed=removed)
        if isinstance(exc, OSError):
            raise ArchiveError(f"could not remove the transcript after copying it: {problem(exc)}") from exc
        raise
    for name in ("archived_at", "archive_path", "status"):
        setattr(session, name, getattr(locked, name))
    if actor is not None:  # a person (the admin, a button); the scheduled command archives unlogged
        audit.record(actor=actor, action=audit.Action.CHAT_ARCHIVED, obj=session)
    return ArchiveResult(
        session_id=sid,
        archive_path=target if packed is not None else None,
        size=packed.seen.size if packed is not None else 0,
    )


def undo_archive(packed: Packed, *, removed: bool) -> None:
    """Back to the state before archiving: the transcript in place, no archive file."""
    if removed:
        # The database refused the change after the transcript was already gone: put it back.
        try:
            put_back(transcript=packed.source, archive=packed.target)
        except (OSError, EOFError, gzip.BadGzipFile, ArchiveError) as exc:
            raise ArchiveError(
                f"the database refused the change and the transcript could not be put back "
                f"({problem(exc)}); it is safe in {packed.target}: gunzip it to {packed.source.path}"
            ) from exc
    packed.target.unlink(missing_ok=True)


def _cannot_restore(exc: safefs.UnsafePath) -> ArchiveError:
    return ArchiveError(
        f"{exc}, so the server will not write the transcript there (the chat's agent can write in that folder "
        f"and may have put it there). Its archive is kept. Ask an admin to remove it (rm -r -- '{exc.path}'), "
        "then press Restore again"
    )


def restore_session(*, session: Session, engine: Engine, actor: audit.Actor = None) -> RestoreResult:
    """Put an archived chat's transcript back where the CLI expects it and un-archive the chat.

    Only what the server's own archive file holds is written, as a new file whose folders are
    made without following links; a link (or anything but the same transcript) in its place is
    refused. Raises :class:`ArchiveError` (chat still archived, archive intact) if that fails.
    """
    sid = str(session.id)
    session.refresh_from_db()
    if not session.is_archived:
        return RestoreResult(session_id=sid, transcript_path=None, already=True)
    archive = Path(session.archive_path) if session.archive_path else None
    target: Transcript | None = None
    placed = False
    if archive is not None:
        target = transcript_of(session)
        if archive.name != f"{sid}.jsonl.gz" or not archive.is_file():
            raise ArchiveError(
                f"its archive file {archive} is missing; restore that file from a backup "
                "and try again, or start a new chat"
            )
        # A warm process of the chat from before it was archived (by expire_sessions, which runs
        # outside the server) must not take the next turn, nor write as it exits while the
        # transcript is put back: closed first, and a new one resumes the transcript restored here.
        chats.close_warm_process(sid, engine=engine, wait=True)
        try:
            try:
                there = safefs.stat_file(target.root, target.name)
            except FileNotFoundError:
                there = None
            if there is not None:
                # The same content is already back (an earlier restore stopped half-way): keep it.
                if not same_as_archive(target, archive):
                    raise ArchiveError(
                        f"a different transcript already exists at {target.path}; move it away and try again"
                    )
            else:
                put_back(transcript=target, archive=archive)
                placed = True
        except safefs.UnsafePath as exc:
            raise _cannot_restore(exc) from exc
        except FileExistsError as exc:
            raise ArchiveError(
                f"a different transcript appeared at {target.path} while restoring; move it away and try again"
            ) from exc
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise ArchiveError(f"could not put the transcript back: {problem(exc)}") from exc
    try:
        updated = Session.objects.filter(pk=session.pk, archived_at__isnull=False).update(
            archived_at=None, archive_path="", status=Session.Status.IDLE, last_activity_at=timezone.now()
        )
    except BaseException:
        if placed and target is not None:
            safefs.remove_file(target.root, target.name)
        raise
    session.refresh_from_db()
    warning = ""
    if archive is not None and updated:
        try:
            archive.unlink()
        except OSError as exc:
            warning = f"the chat is restored, but its archive file could not be deleted: {problem(exc)}"
    if actor is not None:
        audit.record(actor=actor, action=audit.Action.CHAT_RESTORED, obj=session)
    return RestoreResult(
        session_id=sid,
        transcript_path=target.path if target is not None else None,
        already=not updated,
        warning=warning,
    )
