"""The member's changes to a workspace's files: upload, new file or folder, rename, delete, and
the editor's save, which writes only over the version the page opened.

Its own module beside :mod:`.files` (the reading side: a level, a file as the page shows it, a
download) because writing has rules reading has not: where only git may write, the upload limit,
never over an existing name, the edit conflict. Every name is still reached from the workspace's
trusted base through :mod:`drivers.safefs`, never following a link the agent made.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator

from django.conf import settings

from drivers import safefs

from ..selectors import Place
from .files import FileRefused, Opened, Version, _checked, _refusal, _root, open_file, version_of
from .names import BadName, check_name, join


def _writable(place: Place, path: str) -> str:
    """``path`` checked, and refused where only git may write: ``.git`` (in a shared project the
    server runs git on it with its own powers, so a hand-edited config would run as the server),
    and a shared project's ``.worktrees`` (its tasks' worktrees)."""
    path = _checked(path)
    first = path.split("/", 1)[0]
    if first == ".git" or (first == ".worktrees" and place.project and place.kind == "chat"):
        raise FileRefused(
            f"{first} is git's: it is changed through git (Changes, or the terminal), not by hand here.", status=403
        )
    return path


def upload_limit() -> int:
    return int(settings.CLAUDE_WORKSPACE_UPLOAD_MB * 1024 * 1024)


def upload(*, place: Place, folder: str, name: str, chunks: Iterator[bytes], size: int) -> str:
    """Save an uploaded file as a new file ``name`` in ``folder`` (never over an existing one)."""
    limit = upload_limit()
    if size > limit:
        raise FileRefused(
            f"{name[:80]} is {size / 1048576:.1f} MB; uploads may be at most "
            f"{settings.CLAUDE_WORKSPACE_UPLOAD_MB:g} MB (CLAUDE_WORKSPACE_UPLOAD_MB).",
            status=413,
        )
    target = _writable(place, join(_checked(folder), _name(name)))
    with _root(place) as root:
        try:
            with safefs.create(root, target, mode=0o644) as out:
                written = 0
                try:
                    for chunk in chunks:
                        written += len(chunk)
                        if written > limit:
                            raise FileRefused(f"{name[:80]} is larger than the upload limit.", status=413)
                        out.write(chunk)
                except BaseException:
                    safefs.remove_file(root, target)
                    raise
        except OSError as exc:
            raise _refusal(exc, target) from None
    return target


def _name(name: str) -> str:
    try:
        return check_name(name)
    except BadName as exc:
        raise FileRefused(str(exc)) from None


def create_file(*, place: Place, folder: str, name: str) -> str:
    target = _writable(place, join(_checked(folder), _name(name)))
    with _root(place) as root:
        try:
            safefs.create(root, target, mode=0o644).close()
        except OSError as exc:
            raise _refusal(exc, target) from None
    return target


def exists(*, place: Place, path: str) -> bool:
    """Whether anything (a link too, never followed) is at ``path``."""
    path = _checked(path)
    with _root(place) as root:
        try:
            safefs.lstat(root, path)
        except (FileNotFoundError, safefs.UnsafePath):
            return False  # missing, or behind a link: opening it says which
        except OSError as exc:
            raise _refusal(exc, path) from None
    return True


def create_with(*, place: Place, path: str, data: bytes) -> Version:
    """A new file ``path`` holding ``data``, never over what is there (FileExistsError then)."""
    path = _writable(place, path)
    with _root(place) as root:
        try:
            with safefs.create(root, path, mode=0o644) as out:
                out.write(data)
            written = safefs.stat_file(root, path)
        except FileExistsError:
            raise
        except OSError as exc:
            raise _refusal(exc, path) from None
    return version_of(data, written)


def create_folder(*, place: Place, folder: str, name: str) -> str:
    parent, last = _checked(folder), _name(name)
    target = _writable(place, join(parent, last))
    with _root(place) as root:
        try:
            with safefs.folder(root, parent) as fd:
                os.mkdir(last, 0o755, dir_fd=fd)
        except OSError as exc:
            raise _refusal(exc, target) from None
    return target


def rename(*, place: Place, path: str, new_name: str) -> str:
    """Give ``path`` a new name in the same folder (a link is renamed itself); never over an
    existing name."""
    path = _writable(place, path)
    if not path:
        raise FileRefused("The workspace's folder itself cannot be renamed here.")
    folder, _, old = path.rpartition("/")
    new = _name(new_name)
    target = _writable(place, join(folder, new))
    with _root(place) as root:
        try:
            with safefs.folder(root, folder) as fd:
                os.stat(old, dir_fd=fd, follow_symlinks=False)
                with contextlib.suppress(FileNotFoundError):
                    os.stat(new, dir_fd=fd, follow_symlinks=False)
                    raise FileExistsError(target)
                # Both names in the one folder descriptor: the rename cannot land elsewhere.
                os.rename(old, new, src_dir_fd=fd, dst_dir_fd=fd)
        except FileExistsError:
            raise FileRefused(f"{target} exists already: pick another name.", status=409) from None
        except OSError as exc:
            raise _refusal(exc, path) from None
    return target


def delete(*, place: Place, path: str) -> None:
    """Remove a file, a link (itself) or a folder with all in it, following no link."""
    path = _writable(place, path)
    if not path:
        raise FileRefused("The workspace's folder itself cannot be deleted.")
    with _root(place) as root:
        try:
            if not safefs.remove_tree(root, path):
                raise FileNotFoundError(path)
        except OSError as exc:
            raise _refusal(exc, path) from None


class EditConflict(FileRefused):
    """The file changed since the page opened it: nothing was written."""

    def __init__(self, path: str, current: Opened) -> None:
        super().__init__(
            f"{path} changed since you opened it (the agent or someone else wrote it): your text was not saved. "
            "Its current version is shown below; copy what you need from your text, then save again.",
            status=409,
        )
        self.current = current


def save(*, place: Place, path: str, text: str, expected: Version) -> Version:
    """Write ``text`` as the new version of ``path`` if it is still what the page opened (its mtime,
    size and SHA-256); else :class:`EditConflict` with the current version, nothing written."""
    path = _writable(place, path)
    if "\0" in text:
        raise FileRefused("The text holds a NUL character; binary files cannot be edited here.")
    # A browser sends a text box's lines ending in CRLF whatever the file had: the file's own kind is kept.
    text = text.replace("\r\n", "\n")
    with _root(place) as root:
        try:
            fd, found = safefs.open_fd(root, path)
            try:
                current = safefs.read_fd(fd, size=found.st_size)
            finally:
                os.close(fd)
            now = version_of(current, found)
            if now != expected:
                raise EditConflict(path, open_file(place=place, path=path))
            crlf = b"\r\n" in current and current.count(b"\r\n") == current.count(b"\n")
            data = (text.replace("\n", "\r\n") if crlf else text).encode("utf-8", "replace")
            # Its permissions, but never set-user/group-id: the new file is the server user's outside.
            with safefs.replacing(root, path, mode=stat.S_IMODE(found.st_mode) & 0o777) as out:
                out.write(data)
            written = safefs.stat_file(root, path)
        except OSError as exc:
            raise _refusal(exc, path) from None
    return version_of(data, written)
