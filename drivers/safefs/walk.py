"""Names beneath a trusted folder, and the walk that opens them without following a link."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import stat
import sys
from collections.abc import Callable, Iterator

from .errors import LinkRefused, NameRefused, NotAFile, NotAFolder, kind_of

type StrPath = str | os.PathLike[str]
# A trusted folder: its path, or a descriptor of it the caller keeps open (and closes).
type Root = StrPath | int

FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


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


def shown(root: Root, parts: tuple[str, ...]) -> str:
    """The path for a message (only built when something is refused)."""
    if isinstance(root, int):
        try:
            base = os.readlink(f"/proc/self/fd/{root}")
        except OSError:
            base = "<folder>"
    else:
        base = os.fspath(root)
    return os.path.join(base, *parts)


def file_parts(root: Root, name: StrPath) -> tuple[str, ...]:
    """The components of a name that must name something in a folder (not the folder itself)."""
    parts = parts_of(name)
    if not parts:
        raise NameRefused(shown(root, parts), "it names the folder itself, not something in it")
    return parts


# ---------------------------------------------------------------------------------------
# Walking


def refused_as(exc: OSError, folder: int, part: str, shown: str, *, want_folder: bool) -> OSError:
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


class _OpenHow(ctypes.Structure):
    _fields_ = (("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64))


_SYS_OPENAT2 = 437  # the same number on every architecture
_RESOLVE_NO_MAGICLINKS, _RESOLVE_NO_SYMLINKS, _RESOLVE_BENEATH = 0x02, 0x04, 0x08


def _find_openat2() -> Callable[[int, str], int] | None:
    """openat2(2) (Linux 5.6 and later) opening a folder by a relative path beneath a folder, no
    link allowed at any step, in one call where the walk takes two per component; None where the
    system (or a seccomp filter) does not offer it."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        syscall = ctypes.CDLL(None, use_errno=True).syscall
    except (OSError, AttributeError):
        return None
    syscall.restype = ctypes.c_long
    syscall.argtypes = (ctypes.c_long, ctypes.c_int, ctypes.c_char_p, ctypes.POINTER(_OpenHow), ctypes.c_size_t)
    how = _OpenHow(FOLDER_FLAGS, 0, _RESOLVE_NO_SYMLINKS | _RESOLVE_NO_MAGICLINKS | _RESOLVE_BENEATH)

    def openat2(dir_fd: int, path: str) -> int:
        fd = int(syscall(_SYS_OPENAT2, dir_fd, os.fsencode(path), ctypes.byref(how), ctypes.sizeof(how)))
        if fd < 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code), path)
        return fd

    try:
        os.close(openat2(-100, "."))  # AT_FDCWD
    except OSError:
        return None
    return openat2


_openat2 = _find_openat2()


def enter(root: Root, parts: tuple[str, ...], *, make: int | None = None) -> int:
    """A new descriptor of the folder ``parts`` beneath ``root``, every component opened without
    following a link (with ``make``, created with that mode where missing). The caller closes it."""
    if isinstance(root, int):
        current, owned = root, False
    else:
        # The root is the server's: links in its own path are followed.
        current, owned = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC), True
    try:
        if make is None and len(parts) > 1 and _openat2 is not None:
            # Fewer calls for the same rule; on any failure the walk below runs and says what is wrong.
            try:
                below = _openat2(current, "/".join(parts))
            except OSError:
                pass
            else:
                if owned:
                    os.close(current)
                return below
        for n, part in enumerate(parts):
            if make is not None:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, make, dir_fd=current)
            try:
                below = os.open(part, FOLDER_FLAGS, dir_fd=current)
            except OSError as exc:
                raise refused_as(exc, current, part, shown(root, parts[: n + 1]), want_folder=True) from None
            if owned:
                os.close(current)
            current, owned = below, True
        return current if owned else os.dup(current)
    except BaseException:
        if owned:
            os.close(current)
        raise


@contextlib.contextmanager
def in_parent(root: Root, name: StrPath, *, make: int | None = None) -> Iterator[tuple[int, str, tuple[str, ...]]]:
    """The open folder holding ``name``, the last component's name, and all components."""
    parts = file_parts(root, name)
    fd = enter(root, parts[:-1], make=make)
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
    fd = enter(root, parts_of(name), make=mode if create else None)
    try:
        yield fd
    finally:
        os.close(fd)


def make_folders(root: Root, name: StrPath, *, mode: int = 0o700) -> None:
    """Make the folder ``name`` beneath ``root`` and its parents where missing (``mkdir -p``, no link followed)."""
    with folder(root, name, create=True, mode=mode):
        pass
