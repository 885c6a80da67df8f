"""Archiving idle chats: their CLI transcript moves, gzipped, out of the CLI's projects folder.

The messages stay in the database, so an archived chat stays readable. Every move is
copy, verify, then delete: a failure at any step leaves the chat as it was (source intact,
no partial copy). Restoring is the same move in the other direction, so the chat continues
with its memory (``--resume`` finds the transcript where the CLI left it).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Protocol

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from ..models import Session, Turn

CHUNK = 1024 * 1024


class _Reader(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class _Writer(Protocol):
    def write(self, data: bytes, /) -> object: ...


# Sessions another app holds back from archiving, with why: the tasks app keeps the session of a task
# whose work is not merged or discarded yet (it would lose its transcript, and with it its Merge).
# A keeper gets session ids and returns those it keeps, each with a sentence saying why.
Keeper = Callable[[Collection[uuid.UUID]], dict[uuid.UUID, str]]
_keepers: list[Keeper] = []


def keep_sessions(keeper: Keeper) -> None:
    """Register ``keeper`` (once, when its app is ready): :func:`archive_session` and
    :func:`expire_sessions` leave the sessions it keeps alone."""
    if keeper not in _keepers:
        _keepers.append(keeper)


def kept(session_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, str]:
    """The sessions among ``session_ids`` that must not be archived, each with why."""
    found: dict[uuid.UUID, str] = {}
    for keeper in _keepers:
        found.update(keeper(session_ids))
    return found


class ArchiveError(Exception):
    """Archiving or restoring one chat failed; the chat is unchanged. The text says why."""


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


@dataclass
class ExpireReport:
    dry_run: bool
    cutoff: datetime
    archived: list[tuple[Session, ArchiveResult]] = field(default_factory=list)
    would_archive: list[tuple[Session, int]] = field(default_factory=list)  # (session, transcript bytes)
    skipped: list[tuple[Session, str]] = field(default_factory=list)  # busy: a turn is running or queued
    kept: list[tuple[Session, str]] = field(default_factory=list)  # held back by another app (a task's session)
    failed: list[tuple[Session, str]] = field(default_factory=list)


# ---------------------------------------------------------------------------------------
# Files


def _copy_hashing(src: _Reader, out: _Writer | None = None) -> str:
    """SHA-256 of everything read from ``src``, written on to ``out`` if given."""
    digest = hashlib.sha256()
    while chunk := src.read(CHUNK):
        digest.update(chunk)
        if out is not None:
            out.write(chunk)
    return digest.hexdigest()


def _sha256_of(path: Path) -> str:
    with path.open("rb") as src:
        return _copy_hashing(src)


def _sha256_gunzipped(path: Path) -> str:
    with gzip.open(path, "rb") as src:
        return _copy_hashing(src)


def _write_verified(*, target: Path, fill: Callable[[IO[bytes]], str], read_back: Callable[[Path], str]) -> str:
    """Write ``target`` through a temporary file beside it, and only rename it into place once
    ``read_back`` of the written file gives the digest ``fill`` computed; on any failure no
    file is left behind. Returns the digest."""
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            digest = fill(out)
            out.flush()
            os.fsync(out.fileno())
        if read_back(tmp) != digest:
            raise ArchiveError(f"the copy at {target} did not match its source after writing (disk or memory fault?)")
        os.replace(tmp, target)
        return digest
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _gzip_into(source: Path, session_id: str) -> Callable[[IO[bytes]], str]:
    def fill(out: IO[bytes]) -> str:
        with source.open("rb") as src, gzip.GzipFile(filename=f"{session_id}.jsonl", mode="wb", fileobj=out) as packed:
            return _copy_hashing(src, packed)

    return fill


def _gunzip_into(archive: Path) -> Callable[[IO[bytes]], str]:
    def fill(out: IO[bytes]) -> str:
        with gzip.open(archive, "rb") as src:
            return _copy_hashing(src, out)

    return fill


def _problem(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{exc.strerror or exc}{where}"
    return str(exc)


def transcript_of(session: Session) -> Path:
    """Where the CLI keeps this chat's transcript."""
    return Path(session.transcript_path)


def archive_file_for(session: Session) -> Path:
    # Named by the UUID only: nothing a person typed ever becomes part of a path.
    return Path(settings.CLAUDE_ARCHIVE_DIR) / f"{session.id}.jsonl.gz"


def _has_pending_turn(session_id: uuid.UUID) -> bool:
    return Turn.objects.filter(session_id=session_id, status__in=Turn.PENDING).exists()


# ---------------------------------------------------------------------------------------
# Services


def archive_session(*, session: Session) -> ArchiveResult:
    """Move the chat's transcript into the archive folder and mark the chat archived.

    Raises :class:`ArchiveError` (chat unchanged) if a turn is pending or a file step fails.
    Archiving an archived chat does nothing.
    """
    sid = str(session.id)
    if Session.objects.filter(pk=session.pk, archived_at__isnull=False).exists():
        return ArchiveResult(session_id=sid, archive_path=None, already=True)
    if _has_pending_turn(session.pk):
        raise ArchiveError("a turn is running or queued in it; try again once it has finished")
    if reason := kept([session.pk]).get(session.pk):
        raise ArchiveError(reason)
    source = transcript_of(session)
    target = archive_file_for(session)
    moved = source.is_file()
    digest = ""
    size = 0
    if moved:
        try:
            size = source.stat().st_size
            digest = _write_verified(target=target, fill=_gzip_into(source, sid), read_back=_sha256_gunzipped)
        except (OSError, EOFError, gzip.BadGzipFile, ArchiveError) as exc:
            raise ArchiveError(f"could not write the archive copy: {_problem(exc)}") from exc
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
            if moved and _sha256_of(source) != digest:
                raise ArchiveError("its transcript changed while it was being archived; try again later")
            locked.archived_at = timezone.now()
            locked.archive_path = str(target) if moved else ""
            locked.status = Session.Status.ARCHIVED
            locked.save(update_fields=["archived_at", "archive_path", "status"])
            if moved:
                # Last step inside the transaction: if it fails, the chat stays unarchived.
                source.unlink()
                removed = True
    except BaseException as exc:
        if moved:
            _undo_archive(source=source, target=target, removed=removed)
        if isinstance(exc, OSError):
            raise ArchiveError(f"could not remove the transcript after copying it: {_problem(exc)}") from exc
        raise
    for name in ("archived_at", "archive_path", "status"):
        setattr(session, name, getattr(locked, name))
    return ArchiveResult(session_id=sid, archive_path=target if moved else None, size=size)


def _undo_archive(*, source: Path, target: Path, removed: bool) -> None:
    """Back to the state before archiving: the transcript in place, no archive file."""
    if removed:
        # The database refused the change after the transcript was already gone: put it back.
        try:
            _write_verified(target=source, fill=_gunzip_into(target), read_back=_sha256_of)
        except (OSError, EOFError, gzip.BadGzipFile, ArchiveError) as exc:
            raise ArchiveError(f"the database refused the change and the transcript could not be put back "
                               f"({_problem(exc)}); it is safe in {target}: gunzip it to {source}") from exc
    target.unlink(missing_ok=True)


def restore_session(*, session: Session) -> RestoreResult:
    """Put an archived chat's transcript back where the CLI expects it and un-archive the chat.

    Raises :class:`ArchiveError` (chat still archived, archive intact) if that fails.
    """
    sid = str(session.id)
    session.refresh_from_db()
    if not session.is_archived:
        return RestoreResult(session_id=sid, transcript_path=None, already=True)
    archive = Path(session.archive_path) if session.archive_path else None
    target = transcript_of(session)
    placed = False
    if archive is not None:
        if not archive.is_file():
            raise ArchiveError(f"its archive file {archive} is missing; restore that file from a backup "
                               "and try again, or start a new chat")
        try:
            if target.exists():
                # The same content is already back (an earlier restore stopped half-way): keep it.
                if _sha256_of(target) != _sha256_gunzipped(archive):
                    raise ArchiveError(f"a different transcript already exists at {target}; move it away and try again")
            else:
                _write_verified(target=target, fill=_gunzip_into(archive), read_back=_sha256_of)
                placed = True
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise ArchiveError(f"could not put the transcript back: {_problem(exc)}") from exc
    try:
        updated = Session.objects.filter(pk=session.pk, archived_at__isnull=False).update(
            archived_at=None, archive_path="", status=Session.Status.IDLE, last_activity_at=timezone.now())
    except BaseException:
        if placed:
            target.unlink(missing_ok=True)
        raise
    session.refresh_from_db()
    warning = ""
    if archive is not None and updated:
        try:
            archive.unlink()
        except OSError as exc:
            warning = f"the chat is restored, but its archive file could not be deleted: {_problem(exc)}"
    return RestoreResult(session_id=sid, transcript_path=target if archive is not None else None,
                         already=not updated, warning=warning)


def expire_sessions(*, older_than: timedelta, dry_run: bool, now: datetime | None = None) -> ExpireReport:
    """Archive every unarchived chat idle for longer than ``older_than``; chats with a running
    or queued turn are skipped, and so are those a keeper holds back (an open task's). One chat
    failing does not stop the others."""
    now = now or timezone.now()
    cutoff = now - older_than
    report = ExpireReport(dry_run=dry_run, cutoff=cutoff)
    idle = Session.objects.active().filter(last_activity_at__lt=cutoff).select_related("owner")
    stale_ids = set(Session.objects.stale(older_than=older_than, now=now).values_list("pk", flat=True))
    sessions = list(idle.order_by("last_activity_at"))
    keep = kept([session.pk for session in sessions])
    for session in sessions:
        if session.pk not in stale_ids:
            report.skipped.append((session, "a turn is running or queued"))
        elif session.pk in keep:
            report.kept.append((session, keep[session.pk]))
        elif dry_run:
            source = transcript_of(session)
            report.would_archive.append((session, source.stat().st_size if source.is_file() else 0))
        else:
            try:
                report.archived.append((session, archive_session(session=session)))
            except ArchiveError as exc:
                report.failed.append((session, str(exc)))
    return report
