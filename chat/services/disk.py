"""A full disk, told apart from other failures in one place, so that a person reads what happened.

Where the server writes (the database, uploads, transcripts) a full disk surfaces as SQLite's
"database or disk is full" (SQLITE_FULL), PostgreSQL's ``disk_full`` (SQLSTATE 53100) or an
OSError ENOSPC (EDQUOT for a quota), each perhaps wrapped by Django. SQLite in WAL mode may
instead fail to grow its shared-memory file and say only "disk I/O error": that counts when the
database's own file system has no room left. Callers at the edges (the page, the API, uploads,
a running turn) turn what :func:`explain` answers into their notice.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path

from django.db import connection

SQLITE_FULL = 13
SQLITE_IOERR = 10
POSTGRES_DISK_FULL = "53100"
# Below this much free space a file system counts as full: SQLite grows its files in such steps.
ROOM_BYTES = 1024 * 1024
ADVICE = "Tell an admin: the server needs free disk space."
# The HTTP status of a refusal for want of space ("Insufficient Storage").
STATUS = 507


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    found: BaseException | None = exc
    while found is not None and id(found) not in seen:
        seen.add(id(found))
        yield found
        found = found.__cause__ or found.__context__


def no_room(folder: str | os.PathLike[str]) -> bool:
    """Whether the file system of ``folder`` has (almost) no space left for this process."""
    try:
        stats = os.statvfs(folder)
    except OSError:
        return False
    return stats.f_bavail * stats.f_frsize < ROOM_BYTES


def _database_folder() -> Path | None:
    name = connection.settings_dict.get("NAME")
    if connection.vendor != "sqlite" or not name or str(name).startswith(("file:", ":memory:")):
        return None
    return Path(str(name)).parent


def is_disk_full(exc: BaseException, *, database_folder: str | os.PathLike[str] | None = None) -> bool:
    """Whether ``exc`` (or what it wraps) says that a disk is full. ``database_folder``: where the
    SQLite database lives (the default database's, if not given), checked on a bare I/O error."""
    for found in _chain(exc):
        if isinstance(found, OSError) and found.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        code = getattr(found, "sqlite_errorcode", None)
        if isinstance(code, int):
            if code & 0xFF == SQLITE_FULL:
                return True
            if code & 0xFF == SQLITE_IOERR:
                folder = database_folder if database_folder is not None else _database_folder()
                if folder is not None and no_room(folder):
                    return True
        # psycopg 3 (sqlstate) and psycopg2 (pgcode).
        if POSTGRES_DISK_FULL in (getattr(found, "sqlstate", None), getattr(found, "pgcode", None)):
            return True
    return False


def refusal(what: str) -> str:
    """The notice for something a person sent that could not be saved for want of space."""
    return f"The server's disk is full, so {what} was not saved. {ADVICE} Then try again."


def explain(exc: BaseException, *, what: str) -> str | None:
    """:func:`refusal` of ``what`` if ``exc`` says the disk is full; None for any other failure."""
    return refusal(what) if is_disk_full(exc) else None


def during_turn() -> str:
    """What a turn that could not be recorded to its end says."""
    return (
        "The server's disk filled up during this turn, so what came after that was not saved. "
        f"{ADVICE} Then send the message again."
    )
