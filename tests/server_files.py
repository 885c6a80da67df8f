"""The server's own files where a chat's agent may try to reach them, and the agent's ways of trying.

An agent cannot see the server's data folder from its sandbox, but it can make a link that points
there from the folders the server later reads, copies, restores or deletes. These helpers make the
server's secret key and database (a real SQLite file) and let a chat's agent, in bypass mode, run
the commands that put such links (or a FIFO) in place, with the real CLI in its sandbox.
"""

from __future__ import annotations

import base64
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from chat.models import Session, Turn
from tests.real_turns import say

SECRET = "SERVER-SECRET-KEY-3b9f1c"
SQLITE_HEADER = b"SQLite format 3\x00"


@dataclass(frozen=True)
class ServerFiles:
    folder: Path  # the server's data folder
    key: Path  # its secret key
    db: Path  # its database

    def leaked_in(self, data: bytes | str) -> bool:
        """Whether anything of the key or the database is in ``data`` (plain or base64)."""
        raw = data.encode() if isinstance(data, str) else data
        marks = (SECRET.encode(), base64.b64encode(SECRET.encode())[:16], SQLITE_HEADER, b"SQLite format 3")
        return any(mark in raw for mark in marks)

    def untouched(self) -> bool:
        return self.key.read_text() == SECRET and self.db.read_bytes().startswith(SQLITE_HEADER)


def make_server_files(folder: Path) -> ServerFiles:
    folder.mkdir(parents=True, exist_ok=True)
    key = folder / "secret-key.txt"
    key.write_text(SECRET)
    db = folder / "db.sqlite3"
    with sqlite3.connect(db) as connection:
        connection.execute("CREATE TABLE IF NOT EXISTS secrets (value TEXT)")
        connection.execute("INSERT INTO secrets VALUES (?)", (SECRET,))
    connection.close()
    return ServerFiles(folder=folder, key=key, db=db)


async def agent_runs(*, engine, session: Session, user, command: str) -> Turn:
    """The chat's agent runs ``command`` with its Bash tool (in bypass mode: nobody is asked)."""
    return await say(engine=engine, session=session, user=user, text=f"run: {command}")


async def agent_links_transcript(*, engine, session: Session, user, target: Path) -> None:
    """The chat's agent replaces its own transcript with a link to ``target``."""
    await agent_runs(engine=engine, session=session, user=user, command=f"ln -sf {target} {session.transcript_path}")
    assert Path(session.transcript_path).is_symlink()
