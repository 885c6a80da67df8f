"""Archiving idle chats: their CLI transcript moves, gzipped, out of the CLI's projects folder.

The messages stay in the database, so an archived chat stays readable. Every move is
copy, verify, then delete: a failure at any step leaves the chat as it was (source intact,
no partial copy). Restoring is the same move in the other direction, so the chat continues
with its memory (``--resume`` finds the transcript where the CLI left it).
"""

from __future__ import annotations

import ctypes
import gzip
import hashlib
import os
import tempfile
import uuid
import zlib
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from ..models import Session, Turn

CHUNK = 1024 * 1024
# Transcripts are JSON lines: level 1 packs them about 4:1 at several times the speed of level 9,
# which packed them only a little better and made archiving CPU-bound.
GZIP_LEVEL = 1


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
    ``expire_sessions`` leave the sessions it keeps alone."""
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


@dataclass(frozen=True)
class Fingerprint:
    """What changes when a file is written to or replaced: compared instead of hashing it again."""

    size: int
    mtime_ns: int
    inode: int

    @classmethod
    def of(cls, path: Path) -> Fingerprint:
        st = path.stat()
        return cls(size=st.st_size, mtime_ns=st.st_mtime_ns, inode=st.st_ino)


@dataclass(frozen=True)
class Packed:
    """A transcript's verified gzip copy, and the transcript as it was when copied."""

    source: Path
    target: Path
    seen: Fingerprint

    def source_unchanged(self) -> bool:
        try:
            return Fingerprint.of(self.source) == self.seen
        except FileNotFoundError:
            return False


def _copy_crc(src: _Reader, out: _Writer | None = None) -> tuple[int, int]:
    """CRC-32 and length of everything read from ``src``, written on to ``out`` if given."""
    crc = size = 0
    while chunk := src.read(CHUNK):
        crc = zlib.crc32(chunk, crc)
        size += len(chunk)
        if out is not None:
            out.write(chunk)
    return crc, size


def pack(*, source: Path, target: Path, session_id: str, sync: bool = True) -> Packed:
    """Gzip ``source`` into ``target`` in one pass, its CRC-32 taken while copying; read the copy
    back and rename it into place only if it unpacks to as many bytes with the same CRC-32 (gzip
    checks its own trailer too). On any failure no file is left behind. Without ``sync`` the copy
    is not forced to disk: the caller does that for many at once (:func:`sync_folder`) before any
    original is removed."""
    seen = Fingerprint.of(source)
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            if seen.size < CHUNK:
                copied = _pack_small(source, out)
            else:
                with (
                    source.open("rb") as src,
                    gzip.GzipFile(
                        filename=f"{session_id}.jsonl", mode="wb", fileobj=out, compresslevel=GZIP_LEVEL
                    ) as packed,
                ):
                    copied = _copy_crc(src, packed)
            out.flush()
            if sync:
                os.fsync(out.fileno())
        if _read_back(tmp, small=seen.size < CHUNK) != copied:
            raise ArchiveError(f"the copy at {target} did not match its source after writing (disk or memory fault?)")
        if copied[1] != seen.size:
            raise ArchiveError("its transcript changed while it was being archived; try again later")
        os.replace(tmp, target)
        return Packed(source=source, target=target, seen=seen)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _pack_small(source: Path, out: _Writer) -> tuple[int, int]:
    """A transcript of less than a chunk, packed in one call: most are small, and for those the
    gzip module's own steps cost more than the packing (10,000 of them took seconds)."""
    data = source.read_bytes()
    out.write(gzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0))
    return zlib.crc32(data), len(data)


def _read_back(path: Path, *, small: bool) -> tuple[int, int]:
    """CRC-32 and length of what the gzip file at ``path`` unpacks to (its own trailer checked too)."""
    if small:
        data = zlib.decompress(path.read_bytes(), wbits=31)
        return zlib.crc32(data), len(data)
    with gzip.open(path, "rb") as back:
        return _copy_crc(back)


def sync_folder(folder: Path, *, files_too: bool = True) -> None:
    """Make what was renamed into ``folder`` durable (and, with ``files_too``, what was written
    into it), before the originals it replaces are deleted. Files too: on Linux the whole file
    system at once (syncfs), one flush for a batch where an fsync each cost more than packing."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        if files_too and (_syncfs is None or _syncfs(fd) != 0):
            os.sync()
        os.fsync(fd)
    finally:
        os.close(fd)


def _find_syncfs() -> Callable[[int], int] | None:
    try:
        syncfs: Callable[[int], int] = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    return syncfs


_syncfs = _find_syncfs()


PACK_ERRORS = (OSError, EOFError, gzip.BadGzipFile, zlib.error, ArchiveError)


def _gunzip_into(archive: Path) -> Callable[[IO[bytes]], str]:
    def fill(out: IO[bytes]) -> str:
        with gzip.open(archive, "rb") as src:
            return _copy_hashing(src, out)

    return fill


def problem(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{exc.strerror or exc}{where}"
    return str(exc)


def transcript_of(session: Session) -> Path:
    """Where the CLI keeps this chat's transcript."""
    return Path(session.transcript_path)


def archive_file_for(session: Session) -> Path:
    return archive_file_of(session.id)


def archive_file_of(session_id: uuid.UUID) -> Path:
    # Named by the UUID only: nothing a person typed ever becomes part of a path.
    return Path(settings.CLAUDE_ARCHIVE_DIR) / f"{session_id}.jsonl.gz"


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
    packed: Packed | None = None
    if moved:
        try:
            packed = pack(source=source, target=target, session_id=sid)
            sync_folder(target.parent, files_too=False)  # the copy itself was fsync'd
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
            if packed is not None and not packed.source_unchanged():
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
            undo_archive(source=source, target=target, removed=removed)
        if isinstance(exc, OSError):
            raise ArchiveError(f"could not remove the transcript after copying it: {problem(exc)}") from exc
        raise
    for name in ("archived_at", "archive_path", "status"):
        setattr(session, name, getattr(locked, name))
    return ArchiveResult(
        session_id=sid, archive_path=target if moved else None, size=packed.seen.size if packed is not None else 0
    )


def undo_archive(*, source: Path, target: Path, removed: bool) -> None:
    """Back to the state before archiving: the transcript in place, no archive file."""
    if removed:
        # The database refused the change after the transcript was already gone: put it back.
        try:
            _write_verified(target=source, fill=_gunzip_into(target), read_back=_sha256_of)
        except (OSError, EOFError, gzip.BadGzipFile, ArchiveError) as exc:
            raise ArchiveError(
                f"the database refused the change and the transcript could not be put back "
                f"({problem(exc)}); it is safe in {target}: gunzip it to {source}"
            ) from exc
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
            raise ArchiveError(
                f"its archive file {archive} is missing; restore that file from a backup "
                "and try again, or start a new chat"
            )
        try:
            if target.exists():
                # The same content is already back (an earlier restore stopped half-way): keep it.
                if _sha256_of(target) != _sha256_gunzipped(archive):
                    raise ArchiveError(f"a different transcript already exists at {target}; move it away and try again")
            else:
                _write_verified(target=target, fill=_gunzip_into(archive), read_back=_sha256_of)
                placed = True
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise ArchiveError(f"could not put the transcript back: {problem(exc)}") from exc
    try:
        updated = Session.objects.filter(pk=session.pk, archived_at__isnull=False).update(
            archived_at=None, archive_path="", status=Session.Status.IDLE, last_activity_at=timezone.now()
        )
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
            warning = f"the chat is restored, but its archive file could not be deleted: {problem(exc)}"
    return RestoreResult(
        session_id=sid, transcript_path=target if archive is not None else None, already=not updated, warning=warning
    )
