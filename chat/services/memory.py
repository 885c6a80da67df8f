"""What memory (CLAUDE.md files) the agent read, as the CLI says it does.

The CLI reads its memory files when its process starts (and again after a compaction), and names
each one through its ``InstructionsLoaded`` hook (the driver passes it on as an
``instructions_loaded`` notice of that turn). Each is saved as a notice of the turn,
``memory_loaded``: its path within the chat's folder (or ``…/name`` for one outside it), its size
now (through safefs: a link is never followed, and a path outside the folder is not looked at),
how the CLI came to read it (the session's start, a compaction, an ``@path`` import) and its type.
Those of the latest reading are also kept on the chat (``Session.memory_read``), which its page lists.
"""

from __future__ import annotations

import asyncio
import stat
from typing import Any

from drivers import safefs

from ..live import notify
from ..models import Event, Session
from ..paths import relative_path
from .recording import Recorder

NOTICE = "memory_loaded"
# The load reasons (the hook's) of a whole new reading: the process's start, and after the
# conversation was compacted (the CLI reads its memory again then). Others (an @path import, a
# CLAUDE.md of a subfolder the agent went into) add to the reading they came after.
REREADS = ("session_start", "compact")


def _size(workdir: str, name: str) -> int | None:
    """The size of the regular file ``name`` beneath ``workdir`` (None: a link, not a file, gone)."""
    try:
        found = safefs.lstat(workdir, name)
    except OSError:
        return None
    return found.st_size if stat.S_ISREG(found.st_mode) else None


def size_text(size: int) -> str:
    return f"{size} B" if size < 1024 else f"{size / 1024:.1f} KB"


async def record(recorder: Recorder, data: dict[str, Any]) -> None:
    """Save one memory file the CLI read (the hook's fields in ``data``) as a notice of the turn."""
    full = str(data.get("file_path") or "")
    if not full:
        return
    session = await Session.objects.aget(pk=recorder.session_id)
    workdir = session.workdir
    try:
        name = safefs.name_beneath(workdir, full) if workdir else ""
    except safefs.UnsafePath:
        name = ""
    size = await asyncio.to_thread(_size, workdir, name) if name else None
    shown = name or relative_path(full, root=workdir)
    parent = str(data.get("parent_file_path") or "")
    how = f", imported by {relative_path(parent, root=workdir)}" if parent else ""
    text = f"Memory read: {shown}" + (f" ({size_text(size)})" if size is not None else "") + how
    file = {
        "path": shown,
        "inside": bool(name),
        "size": size,
        "size_text": size_text(size) if size is not None else "",
        "reason": str(data.get("load_reason") or ""),
        "type": str(data.get("memory_type") or ""),
        "parent": relative_path(parent, root=workdir) if parent else "",
    }
    await recorder.add(kind=Event.Kind.NOTICE, name=NOTICE, text=text, data=file)
    # What the page lists: the latest reading (a start or a compaction begins a new one; a file
    # read again within it, by a second compaction in one turn, say, is listed once).
    kept = session.memory_read if isinstance(session.memory_read, dict) else {}
    compacted = file["reason"] == "compact"
    if file["reason"] in REREADS and (kept.get("turn") != recorder.turn.pk or kept.get("compacted") != compacted):
        kept = {"turn": recorder.turn.pk, "prompt": recorder.turn.prompt[:200], "compacted": compacted, "files": []}
    kept["files"] = [*(f for f in kept.get("files", []) if f.get("path") != shown), file]
    await Session.objects.filter(pk=session.pk).aupdate(memory_read=kept)  # this column only
    session.memory_read = kept
    if session.kind == Session.Kind.CHAT:  # only a chat's page lists them above its turns
        await notify.memory_changed(session)
