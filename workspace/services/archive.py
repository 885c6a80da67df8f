"""A folder of a workspace as a zip, streamed as it is made (nothing is kept on the server).

The folders are walked by descriptor, never following a link; only regular files are packed, each
read through its descriptor. Links, FIFOs, devices and ``.git`` are left out.
"""

from __future__ import annotations

import os
import stat
import time
import zipfile
from collections.abc import Iterator

from drivers import safefs

from ..selectors import Place
from .files import FileRefused, _checked, _refusal, _root

_CHUNK = 1 << 16
LEFT_OUT = frozenset({".git"})
MAX_DEPTH = 64


class _Pipe:
    """A write-only stream whose bytes the generator hands on (zipfile writes data descriptors
    when it cannot seek back)."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.offset = 0

    def close(self) -> None:
        pass

    def write(self, data: bytes, /) -> int:
        self.parts.append(bytes(data))
        self.offset += len(data)
        return len(data)

    def tell(self) -> int:
        return self.offset

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data, self.parts = b"".join(self.parts), []
        return data


def zip_name(path: str, place: Place) -> str:
    last = path.rsplit("/", 1)[-1] if path else place.kind + "-" + place.pk[:8]
    return f"{last}.zip"


def zipped(*, place: Place, path: str) -> Iterator[bytes]:
    """The folder ``path`` as zip bytes, chunk by chunk. It is checked before the first chunk, so a
    refusal can still be an error page."""
    path = _checked(path)
    with _root(place) as root:
        try:
            with safefs.folder(root, path):
                pass
        except OSError as exc:
            raise _refusal(exc, path) from None
    return _stream(place, path)


def _stream(place: Place, path: str) -> Iterator[bytes]:
    pipe = _Pipe()
    with (
        _root(place) as root,
        safefs.folder(root, path) as top,
        zipfile.ZipFile(pipe, "w", zipfile.ZIP_DEFLATED) as archive,
    ):
        for name, fd in _files(top, ""):
            try:
                found = os.fstat(fd)
                info = zipfile.ZipInfo(name, date_time=time.localtime(max(found.st_mtime, 315532800))[:6])
                info.compress_type = zipfile.ZIP_DEFLATED
                info.file_size = found.st_size
                with archive.open(info, "w") as out:
                    while chunk := os.read(fd, _CHUNK):
                        out.write(chunk)
                        if pipe.offset and len(pipe.parts) > 16:
                            yield pipe.take()
            finally:
                os.close(fd)
            yield pipe.take()
    yield pipe.take()


def _files(folder: int, prefix: str, depth: int = 0) -> Iterator[tuple[str, int]]:
    """(name in the zip, open descriptor) of every regular file beneath ``folder``, by name; folders
    deeper than MAX_DEPTH are left out (an agent can nest folders without end)."""
    if depth > MAX_DEPTH:
        return
    with os.scandir(folder) as scan:
        entries = sorted(
            (entry.name, entry.is_dir(follow_symlinks=False), entry.is_file(follow_symlinks=False)) for entry in scan
        )
    for name, is_dir, is_file in entries:
        if name in LEFT_OUT:
            continue
        try:
            if is_dir:
                sub = os.open(name, safefs.walk.FOLDER_FLAGS, dir_fd=folder)
                try:
                    yield from _files(sub, f"{prefix}{name}/", depth + 1)
                finally:
                    os.close(sub)
            elif is_file:
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=folder)
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    os.close(fd)
                    continue
                yield f"{prefix}{name}", fd
        except OSError:
            continue  # removed or swapped for a link meanwhile: left out


__all__ = ["FileRefused", "zip_name", "zipped"]
