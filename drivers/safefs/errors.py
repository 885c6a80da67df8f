"""What the server refuses to do with a path an agent could have made, as typed ``OSError``s."""

from __future__ import annotations

import errno
import logging
import stat

log = logging.getLogger("drivers.safefs")


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
