"""Reading, listing, creating, replacing and removing files beneath a trusted folder."""

from __future__ import annotations

import contextlib
import errno
import io
import os
import secrets
import shutil
import stat
from collections.abc import Iterator
from dataclasses import dataclass

from .errors import LinkRefused, NotAFile, kind_of
from .walk import Root, StrPath, enter, file_parts, folder, in_parent, parts_of, refused_as, shown

# O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer that never comes. It
# changes nothing for the regular files that are let through. O_NOCTTY: a terminal never becomes ours.
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_CREATE = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_NOCTTY | os.O_CLOEXEC
_CHUNK = 1 << 20


# ---------------------------------------------------------------------------------------
# Reading


def open_fd(root: Root, name: StrPath) -> tuple[int, os.stat_result]:
    """A descriptor of the regular file ``name`` beneath ``root``, open for reading, and its fstat;
    the caller closes it."""
    parts = file_parts(root, name)
    parent = enter(root, parts[:-1])
    try:
        fd = os.open(parts[-1], _READ, dir_fd=parent)
    except OSError as exc:
        raise refused_as(exc, parent, parts[-1], shown(root, parts), want_folder=False) from None
    finally:
        os.close(parent)
    try:
        found = os.fstat(fd)
        if not stat.S_ISREG(found.st_mode):
            raise NotAFile(shown(root, parts), kind_of(found.st_mode))
    except BaseException:
        os.close(fd)
        raise
    return fd, found


def open_read(root: Root, name: StrPath) -> io.BufferedReader:
    """The regular file ``name`` beneath ``root``, open for reading."""
    fd, _found = open_fd(root, name)
    return os.fdopen(fd, "rb")


def read_bytes(root: Root, name: StrPath, *, limit: int | None = None) -> bytes:
    """The bytes of the regular file ``name`` beneath ``root`` (at most ``limit`` of them)."""
    fd, found = open_fd(root, name)
    try:
        return read_fd(fd, size=found.st_size, limit=limit)
    finally:
        os.close(fd)


def read_fd(fd: int, *, size: int, limit: int | None = None) -> bytes:
    """What is left to read of the open regular file ``fd``, whose fstat said ``size`` (at most
    ``limit`` bytes). Fewer calls than a file object: one read for a file that did not grow."""
    # Ask for one byte more than its size: a short read of a regular file is its end.
    ask = size + 1 if limit is None else min(limit, size + 1)
    left = -1 if limit is None else limit
    chunks = []
    while ask > 0:
        chunk = os.read(fd, ask)
        chunks.append(chunk)
        if left >= 0:
            left -= len(chunk)
        if len(chunk) < ask or left == 0:
            break
        ask = _CHUNK if left < 0 else min(left, _CHUNK)
    return b"".join(chunks)


def lstat(root: Root, name: StrPath) -> os.stat_result:
    """What ``name`` beneath ``root`` is, without following it if it is a link (the folders on its
    way must not be links). ``FileNotFoundError`` if it is not there."""
    parts = parts_of(name)
    parent = enter(root, parts[:-1])
    try:
        return os.stat(parts[-1], dir_fd=parent, follow_symlinks=False) if parts else os.fstat(parent)
    finally:
        os.close(parent)


def stat_file(root: Root, name: StrPath) -> os.stat_result:
    """Like :func:`lstat`, but what is there must be a regular file: a link is refused with
    :class:`LinkRefused`, anything else with :class:`NotAFile`. ``FileNotFoundError`` if it is not there."""
    found = lstat(root, name)
    if stat.S_ISLNK(found.st_mode):
        raise LinkRefused(shown(root, parts_of(name)))
    if not stat.S_ISREG(found.st_mode):
        raise NotAFile(shown(root, parts_of(name)), kind_of(found.st_mode))
    return found


@dataclass(frozen=True)
class Entry:
    """One name in a folder, as it is (a link is listed as a link, never followed)."""

    name: str
    kind: str  # kind_of(mode): "a regular file", "a folder", "a symbolic link", ...
    mode: int
    size: int
    mtime_ns: int

    @property
    def is_file(self) -> bool:
        return stat.S_ISREG(self.mode)

    @property
    def is_folder(self) -> bool:
        return stat.S_ISDIR(self.mode)


def entries(root: Root, name: StrPath = "") -> list[Entry]:
    """The names in the folder ``name`` beneath ``root``, sorted, each as it is."""
    found = []
    with folder(root, name) as fd, os.scandir(fd) as listing:
        for item in listing:
            try:
                st = item.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # removed meanwhile
            found.append(Entry(item.name, kind_of(st.st_mode), st.st_mode, st.st_size, st.st_mtime_ns))
    return sorted(found, key=lambda entry: entry.name)


# ---------------------------------------------------------------------------------------
# Writing


def create(
    root: Root, name: StrPath, *, mode: int = 0o600, parents: bool = False, folder_mode: int = 0o700
) -> io.BufferedRandom:
    """A new file ``name`` beneath ``root``, open for writing and reading back; ``FileExistsError``
    if the name is taken (:class:`LinkRefused` if by a link): nothing is ever overwritten. With
    ``parents`` its missing folders are made (each ``folder_mode``)."""
    with in_parent(root, name, make=folder_mode if parents else None) as (parent, last, parts):
        try:
            fd = os.open(last, _CREATE, mode, dir_fd=parent)
        except FileExistsError as exc:
            refusal = refused_as(exc, parent, last, shown(root, parts), want_folder=False)
            raise (refusal if isinstance(refusal, LinkRefused) else exc) from None
    return os.fdopen(fd, "w+b")


@contextlib.contextmanager
def replacing(
    root: Root, name: StrPath, *, mode: int = 0o600, parents: bool = False, sync: bool = True
) -> Iterator[io.BufferedRandom]:
    """Write a new version of ``name`` beneath ``root``: the caller writes into a new hidden file
    beside it, which, when the block ends without an error, is flushed (fsync'd with ``sync``) and
    renamed over ``name`` within the same folder descriptor. A link at ``name`` is replaced, never
    written through; a folder there is refused. On an error the new file is removed."""
    with in_parent(root, name, make=0o700 if parents else None) as (parent, last, parts):
        temporary = f".{last[:100]}.{secrets.token_hex(6)}.tmp"
        fd = os.open(temporary, _CREATE, mode, dir_fd=parent)
        try:
            with os.fdopen(fd, "w+b") as out:
                yield out
                out.flush()
                if sync:
                    os.fsync(out.fileno())
            try:
                os.rename(temporary, last, src_dir_fd=parent, dst_dir_fd=parent)
            except IsADirectoryError:
                raise NotAFile(shown(root, parts), "a folder") from None
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary, dir_fd=parent)
            raise


# ---------------------------------------------------------------------------------------
# Removing


def remove_file(root: Root, name: StrPath, *, missing_ok: bool = True) -> bool:
    """Remove the file ``name`` beneath ``root`` (a link there is removed itself, never what it
    points to; a folder is refused with :class:`NotAFile`). False if it was not there."""
    try:
        with in_parent(root, name) as (parent, last, parts):
            try:
                os.unlink(last, dir_fd=parent)
            except IsADirectoryError:
                raise NotAFile(shown(root, parts), "a folder") from None
    except FileNotFoundError:
        if not missing_ok:
            raise
        return False
    return True


def remove_tree(root: Root, name: StrPath, *, missing_ok: bool = True) -> bool:
    """Remove ``name`` beneath ``root`` with everything in it: a folder and all beneath it, or a
    file or a link (the link itself). Nothing outside is touched: the folders are walked by
    descriptor and no link is followed. False if it was not there."""
    if not shutil.rmtree.avoids_symlink_attacks:  # pragma: no cover - Linux has the fd-based walk
        raise OSError(errno.ENOTSUP, "this system cannot remove a folder without following links")
    try:
        with in_parent(root, name) as (parent, last, _parts):
            found = os.stat(last, dir_fd=parent, follow_symlinks=False)
            if stat.S_ISDIR(found.st_mode):
                # With dir_fd, rmtree opens every folder relative to its parent with O_NOFOLLOW and
                # checks it is the one it looked at, so a link swapped in is removed, not followed.
                shutil.rmtree(last, dir_fd=parent)
            else:
                os.unlink(last, dir_fd=parent)
    except FileNotFoundError:
        if not missing_ok:
            raise
        return False
    return True
