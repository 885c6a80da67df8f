"""The files of archiving: a chat's transcript packed into the archive folder, and put back.

The transcript lies in the chat's CLI config folder, which the chat's agent can write: it may
have put a link there (to the server's secret key, its database) or a FIFO. So the transcript is
only ever reached through :mod:`drivers.safefs`, as a name beneath that folder: opened without
following a link at any step and refused unless it is a regular file, removed without following
links, and put back as a new file (its folders made the same way), never over anything. The
archive only ever holds what was read that way, so Restore can only write back the chat's own
bytes. The archive folder is the server's own.

Every move is copy, verify, then delete: a failure at any step leaves the chat as it was.
"""

from __future__ import annotations

import contextlib
import ctypes
import gzip
import hashlib
import os
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from drivers import safefs

CHUNK = 1024 * 1024
# Transcripts are JSON lines: level 1 packs them about 4:1 at several times the speed of level 9,
# which packed them only a little better and made archiving CPU-bound.
GZIP_LEVEL = 1


class ArchiveError(Exception):
    """Archiving or restoring one chat failed; the chat is unchanged. The text says why."""


class _Reader(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class _Writer(Protocol):
    def write(self, data: bytes, /) -> object: ...


@dataclass(frozen=True)
class Transcript:
    """A chat's transcript: a name beneath its CLI config folder (the root the server made)."""

    root: str
    name: str  # relative, e.g. "projects/-srv-work-1/<uuid>.jsonl"

    @classmethod
    def at(cls, *, config_dir: str, path: str) -> Transcript:
        """The transcript at ``path``, which must lie in ``config_dir``; :class:`ArchiveError` if it
        does not (a damaged record), since nothing outside that folder is the chat's to move."""
        if not config_dir:
            raise ArchiveError("it has no CLI config folder on record, so its transcript cannot be reached safely")
        try:
            name = safefs.name_beneath(config_dir, path)
        except safefs.NameRefused:
            name = ""
        if not name:
            raise ArchiveError(
                f"its transcript path {path} is not inside its CLI config folder {config_dir} (a damaged record); "
                "it was left as it is"
            )
        return cls(root=config_dir, name=name)

    @property
    def path(self) -> Path:
        return Path(self.root, self.name)


def has_transcript(*, config_dir: str, path: str) -> bool:
    """Whether the CLI has written the chat's transcript: a regular file in its place, looked at
    without following links (a link the agent put there is no transcript)."""
    try:
        transcript = Transcript.at(config_dir=config_dir, path=path)
        safefs.stat_file(transcript.root, transcript.name)
    except (OSError, ArchiveError):
        return False
    return True


def refused(exc: safefs.UnsafePath) -> str:
    """What a person reads when a transcript (or a folder on its way) is not what it must be."""
    return (
        f"{exc}. The chat's agent can write there, so it may have been put there to reach the server's files; "
        "nothing was read or written through it and the chat was left as it was. An admin looks at it and "
        f"removes it (rm -r -- '{exc.path}'), or deletes the chat"
    )


def problem(exc: BaseException) -> str:
    if isinstance(exc, safefs.UnsafePath):
        return refused(exc)
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{exc.strerror or exc}{where}"
    return str(exc)


PACK_ERRORS = (OSError, EOFError, gzip.BadGzipFile, zlib.error, ArchiveError)


def _copy_hashing(src: _Reader, out: _Writer | None = None) -> str:
    """SHA-256 of everything read from ``src``, written on to ``out`` if given."""
    digest = hashlib.sha256()
    while chunk := src.read(CHUNK):
        digest.update(chunk)
        if out is not None:
            out.write(chunk)
    return digest.hexdigest()


def _copy_crc(src: _Reader, out: _Writer | None = None) -> tuple[int, int]:
    """CRC-32 and length of everything read from ``src``, written on to ``out`` if given."""
    crc = size = 0
    while chunk := src.read(CHUNK):
        crc = zlib.crc32(chunk, crc)
        size += len(chunk)
        if out is not None:
            out.write(chunk)
    return crc, size


@dataclass(frozen=True)
class Fingerprint:
    """What changes when a file is written to or replaced: compared instead of hashing it again."""

    size: int
    mtime_ns: int
    inode: int

    @classmethod
    def of(cls, st: os.stat_result) -> Fingerprint:
        return cls(size=st.st_size, mtime_ns=st.st_mtime_ns, inode=st.st_ino)


@dataclass(frozen=True)
class Packed:
    """A transcript's verified gzip copy, and the transcript as it was when copied."""

    source: Transcript
    target: Path
    seen: Fingerprint

    def remove_source(self) -> bool:
        """Remove the transcript if it is still as it was when copied (False, and left, if not: a
        turn wrote to it, or something else was put in its place, a link included)."""
        folder, _, last = self.source.name.rpartition("/")
        with safefs.folder(self.source.root, folder) as fd:
            # The folder was reached without links; by a plain name in it, with follow_symlinks
            # off, nothing leads out of it (and removing a link removes the link).
            try:
                found = os.stat(last, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                return False
            if Fingerprint.of(found) != self.seen:
                return False
            os.unlink(last, dir_fd=fd)
        return True


# ---------------------------------------------------------------------------------------
# Packing


def pack(*, source: Transcript, target: Path, session_id: str, sync: bool = True) -> Packed | None:
    """Gzip the transcript into ``target`` in one pass, its CRC-32 taken while copying; read the
    copy back and rename it into place only if it unpacks to as many bytes with the same CRC-32
    (gzip checks its own trailer too). None: there is no transcript. On any failure no file is
    left behind; a transcript that is a link or not a regular file raises
    :class:`~drivers.safefs.UnsafePath` before anything is written. Without ``sync`` the copy is
    not forced to disk: the caller does that for many at once (:func:`sync_folder`) before any
    original is removed."""
    try:
        fd, found = safefs.open_fd(source.root, source.name)
    except FileNotFoundError:
        return None
    seen = Fingerprint.of(found)
    try:
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        out_fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(out_fd, "wb") as out:
                if seen.size < CHUNK:
                    copied = _pack_small(safefs.read_fd(fd, size=seen.size), out)
                else:
                    with (
                        os.fdopen(fd, "rb", closefd=False) as src,
                        gzip.GzipFile(
                            filename=f"{session_id}.jsonl", mode="wb", fileobj=out, compresslevel=GZIP_LEVEL
                        ) as packed,
                    ):
                        copied = _copy_crc(src, packed)
                out.flush()
                if sync:
                    os.fsync(out.fileno())
            if _read_back(tmp, small=seen.size < CHUNK) != copied:
                raise ArchiveError(
                    f"the copy at {target} did not match its source after writing (disk or memory fault?)"
                )
            if copied[1] != seen.size:
                raise ArchiveError("its transcript changed while it was being archived; try again later")
            os.replace(tmp, target)
            return Packed(source=source, target=target, seen=seen)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    finally:
        os.close(fd)


def _pack_small(data: bytes, out: _Writer) -> tuple[int, int]:
    """A transcript of less than a chunk, packed in one call: most are small, and for those the
    gzip module's own steps cost more than the packing (10,000 of them took seconds)."""
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


# ---------------------------------------------------------------------------------------
# Putting back


def _archived_digest(archive: Path) -> str:
    # The archive file by name in its folder, not followed if it were a link: only a file the
    # server wrote is ever unpacked into a chat's folder.
    with safefs.open_read(archive.parent, archive.name) as raw, gzip.GzipFile(fileobj=raw, mode="rb") as src:
        return _copy_hashing(src)


def same_as_archive(transcript: Transcript, archive: Path) -> bool:
    """Whether the transcript in place (a regular file, else refused) holds what the archive holds."""
    with safefs.open_read(transcript.root, transcript.name) as src:
        return _copy_hashing(src) == _archived_digest(archive)


def put_back(*, transcript: Transcript, archive: Path) -> None:
    """Unpack ``archive`` into the transcript's place as a new file, its missing folders made
    beneath the config folder, no link followed and nothing overwritten (``FileExistsError`` if the
    name is taken); the copy is read back and compared. On any failure the new file is removed."""
    with safefs.open_read(archive.parent, archive.name) as raw:
        out = safefs.create(transcript.root, transcript.name, parents=True)
        try:
            with out, gzip.GzipFile(fileobj=raw, mode="rb") as src:
                digest = _copy_hashing(src, out)
                out.flush()
                os.fsync(out.fileno())
                out.seek(0)
                if _copy_hashing(out) != digest:
                    raise ArchiveError(
                        f"the copy at {transcript.path} did not match its archive after writing (disk or memory fault?)"
                    )
        except BaseException:
            with contextlib.suppress(OSError):
                safefs.remove_file(transcript.root, transcript.name)
            raise
