"""Files beneath a trusted folder, reached without following a link at any step.

An agent writes in its working directory and in its chat's CLI config folder, so anything there
may be a symbolic link it made (to the server's secret key, its database, another member's
files), a FIFO that blocks a reader for ever, or a folder where a file belongs. Every function
here takes a *root* the server trusts (a folder it made or was configured with, as a path or an
open folder descriptor: links in the root's own path are the server's and are followed) and a
*name* beneath it (relative, no ``..``). The name is walked one component at a time from the
root's descriptor, each folder opened with ``O_NOFOLLOW | O_DIRECTORY``, the last component with
``O_NOFOLLOW`` too, and what was opened is checked with ``fstat`` (so a swap after a check gains
nothing). A link anywhere is refused with :class:`LinkRefused`, a final name of the wrong kind
with :class:`NotAFile` or :class:`NotAFolder`, a name that is absolute or climbs with ``..``
with :class:`NameRefused`; all are :class:`UnsafePath`, an ``OSError`` whose text names the path
and what it is. Files are created only new (``O_CREAT | O_EXCL | O_NOFOLLOW``) or by a rename
inside the same folder descriptor, so nothing is ever written through a link.

No Django imports.
"""

from __future__ import annotations

import contextlib
import errno
import io
import logging
import os
import secrets
import shutil
import stat
from collections.abc import Iterator
from dataclasses import dataclass

log = logging.getLogger(__name__)

type StrPath = str | os.PathLike[str]
# A trusted folder: its path, or a descriptor of it the caller keeps open (and closes).
type Root = StrPath | int

_FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer that never comes. It
# changes nothing for the regular files that are let through. O_NOCTTY: a terminal never becomes ours.
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_CREATE = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_NOCTTY | os.O_CLOEXEC
_CHUNK = 1 << 20


class UnsafePath(OSError):
    """A path the server refuses to use; ``path`` is where, the text says what it is and why."""

    def __init__(self, code: int, path: str, what: str) -> None:
        super().__init__(code, what, path)
        self.path = path
        # Every refusal is made here, so every one is logged: a link where the server looks is a
        # sign of an agent trying to reach what it must not.
        log.warning("refused %s: %s", path, what)

    def __str__(self) -> str:
        return f"{self.path} {self.strerror}"


class LinkRefused(UnsafePath):
    """The path, or a folder on its way, is a symbolic link."""

    def __init__(self, path: str) -> None:
        super().__init__(
            errno.ELOOP, path, "is a symbolic link, which the server never follows in a folder an agent can write"
        )


class NotAFile(UnsafePath):
    """A regular file was expected; ``kind`` is what is there (a FIFO, a device, a folder, ...)."""

    def __init__(self, path: str, kind: str) -> None:
        super().__init__(errno.EINVAL, path, f"is {kind}, not a regular file")
        self.kind = kind


class NotAFolder(UnsafePath):
    """A folder was expected (the name's parent, or the folder asked for); ``kind`` is what is there."""

    def __init__(self, path: str, kind: str) -> None:
        super().__init__(errno.ENOTDIR, path, f"is {kind}, not a folder")
        self.kind = kind


class NameRefused(UnsafePath):
    """The name is not one beneath the root: absolute, with ``..``, empty where a file is meant, or with NUL."""

    def __init__(self, path: str, why: str) -> None:
        super().__init__(errno.EINVAL, path, f"is not a name beneath a folder: {why}")


def kind_of(mode: int) -> str:
    """What a file of this ``st_mode`` is, in words."""
    for test, kind in (
        (stat.S_ISREG, "a regular file"),
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return kind
    return "a special file"


# ---------------------------------------------------------------------------------------
# Names


def parts_of(name: StrPath) -> tuple[str, ...]:
    """The components of a relative ``name`` (``a//b/./c`` is ``a, b, c``; ``""`` and ``.`` are none)."""
    text = os.fspath(name)
    if "\0" in text:
        raise NameRefused(repr(text), "it holds a NUL character")
    if text.startswith("/"):
        raise NameRefused(text, "it is absolute")
    # Plain string work: this runs for every file of a batch, where pathlib cost more than the I/O.
    parts = tuple(part for part in text.split("/") if part and part != ".")
    if ".." in parts:
        raise NameRefused(text, "it climbs with '..'")
    return parts


def name_beneath(root: StrPath, path: StrPath) -> str:
    """``path`` as a name beneath ``root`` (``""``: the root itself), compared as text: nothing on
    disk is looked at, so nothing is followed. :class:`NameRefused` if it is not beneath it."""
    root_text, path_text = os.fspath(root), os.fspath(path)
    root_parts = [part for part in root_text.split("/") if part and part != "."]
    path_parts = [part for part in path_text.split("/") if part and part != "."]
    if root_text.startswith("/") != path_text.startswith("/") or path_parts[: len(root_parts)] != root_parts:
        raise NameRefused(path_text, f"it is not inside {root_text}")
    relative = "/".join(path_parts[len(root_parts) :])
    parts_of(relative)
    return relative


def _shown(root: Root, parts: tuple[str, ...]) -> str:
    """The path for a message (only built when something is refused)."""
    if isinstance(root, int):
        try:
            base = os.readlink(f"/proc/self/fd/{root}")
        except OSError:
            base = "<folder>"
    else:
        base = os.fspath(root)
    return os.path.join(base, *parts)


def _file_parts(root: Root, name: StrPath) -> tuple[str, ...]:
    """The components of a name that must name something in a folder (not the folder itself)."""
    parts = parts_of(name)
    if not parts:
        raise NameRefused(_shown(root, parts), "it names the folder itself, not something in it")
    return parts


# ---------------------------------------------------------------------------------------
# Walking


def _refusal(exc: OSError, folder: int, part: str, shown: str, *, want_folder: bool) -> OSError:
    """Why opening ``part`` in ``folder`` failed, as a typed refusal where it is one (a link, a
    file of the wrong kind); else the error itself. Only run when something failed."""
    if exc.errno == errno.ENOENT:
        return exc
    try:
        found = os.stat(part, dir_fd=folder, follow_symlinks=False)
    except OSError:
        return exc
    if stat.S_ISLNK(found.st_mode):
        return LinkRefused(shown)
    if want_folder and not stat.S_ISDIR(found.st_mode):
        return NotAFolder(shown, kind_of(found.st_mode))
    if not want_folder and not stat.S_ISREG(found.st_mode):
        return NotAFile(shown, kind_of(found.st_mode))
    return exc


def _enter(root: Root, parts: tuple[str, ...], *, make: int | None = None) -> int:
    """A new descriptor of the folder ``parts`` beneath ``root``, every component opened without
    following a link (with ``make``, created with that mode where missing). The caller closes it."""
    if isinstance(root, int):
        current, owned = root, False
    else:
        # The root is the server's: links in its own path are followed.
        current, owned = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC), True
    try:
        for n, part in enumerate(parts):
            if make is not None:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, make, dir_fd=current)
            try:
                below = os.open(part, _FOLDER, dir_fd=current)
            except OSError as exc:
                raise _refusal(exc, current, part, _shown(root, parts[: n + 1]), want_folder=True) from None
            if owned:
                os.close(current)
            current, owned = below, True
        return current if owned else os.dup(current)
    except BaseException:
        if owned:
            os.close(current)
        raise


@contextlib.contextmanager
def _parent(root: Root, name: StrPath, *, make: int | None = None) -> Iterator[tuple[int, str, tuple[str, ...]]]:
    """The open folder holding ``name``, the last component's name, and all components."""
    parts = _file_parts(root, name)
    fd = _enter(root, parts[:-1], make=make)
    try:
        yield fd, parts[-1], parts
    finally:
        os.close(fd)


@contextlib.contextmanager
def folder(root: Root, name: StrPath = "", *, create: bool = False, mode: int = 0o700) -> Iterator[int]:
    """The folder ``name`` beneath ``root`` as an open descriptor, closed on leaving; with
    ``create`` it is made (with its parents, each ``mode``) where missing. What is done through it
    with ``dir_fd`` and a plain name (``follow_symlinks=False`` where a call would follow) stays
    in that folder."""
    fd = _enter(root, parts_of(name), make=mode if create else None)
    try:
        yield fd
    finally:
        os.close(fd)


def make_folders(root: Root, name: StrPath, *, mode: int = 0o700) -> None:
    """Make the folder ``name`` beneath ``root`` and its parents where missing (``mkdir -p``, no link followed)."""
    with folder(root, name, create=True, mode=mode):
        pass


# ---------------------------------------------------------------------------------------
# Reading


def open_fd(root: Root, name: StrPath) -> tuple[int, os.stat_result]:
    """A descriptor of the regular file ``name`` beneath ``root``, open for reading, and its fstat;
    the caller closes it."""
    parts = _file_parts(root, name)
    parent = _enter(root, parts[:-1])
    try:
        fd = os.open(parts[-1], _READ, dir_fd=parent)
    except OSError as exc:
        raise _refusal(exc, parent, parts[-1], _shown(root, parts), want_folder=False) from None
    finally:
        os.close(parent)
    try:
        found = os.fstat(fd)
        if not stat.S_ISREG(found.st_mode):
            raise NotAFile(_shown(root, parts), kind_of(found.st_mode))
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
    parent = _enter(root, parts[:-1])
    try:
        return os.stat(parts[-1], dir_fd=parent, follow_symlinks=False) if parts else os.fstat(parent)
    finally:
        os.close(parent)


def stat_file(root: Root, name: StrPath) -> os.stat_result:
    """Like :func:`lstat`, but what is there must be a regular file: a link is refused with
    :class:`LinkRefused`, anything else with :class:`NotAFile`. ``FileNotFoundError`` if it is not there."""
    found = lstat(root, name)
    if stat.S_ISLNK(found.st_mode):
        raise LinkRefused(_shown(root, parts_of(name)))
    if not stat.S_ISREG(found.st_mode):
        raise NotAFile(_shown(root, parts_of(name)), kind_of(found.st_mode))
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
    with _parent(root, name, make=folder_mode if parents else None) as (parent, last, parts):
        try:
            fd = os.open(last, _CREATE, mode, dir_fd=parent)
        except FileExistsError as exc:
            refusal = _refusal(exc, parent, last, _shown(root, parts), want_folder=False)
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
    with _parent(root, name, make=0o700 if parents else None) as (parent, last, parts):
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
                raise NotAFile(_shown(root, parts), "a folder") from None
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
        with _parent(root, name) as (parent, last, parts):
            try:
                os.unlink(last, dir_fd=parent)
            except IsADirectoryError:
                raise NotAFile(_shown(root, parts), "a folder") from None
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
        with _parent(root, name) as (parent, last, _parts):
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
