"""Project memory: the ``CLAUDE.md`` of a folder, which Claude Code reads when a session starts.

The CLI (2.1.330), as the server starts it, reads the working directory's ``CLAUDE.md`` and
``.claude/CLAUDE.md`` (and the files they import with ``@path``); not ``CLAUDE.local.md``, which
belongs to the local settings it is not given. The folder is the agent's: the file is opened and
saved through :mod:`.files` (safefs, never following a link), a link or a special file in its place
is refused with what to do, a save is refused if the file changed since it was opened (the agent
may have written it), and a new ``CLAUDE.md`` is made only where none is.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..selectors import Place
from . import edits, files
from .edits import EditConflict
from .files import FileRefused, Opened, Version

# Where the CLI reads a project's memory, in the order it is offered here.
NAMES = ("CLAUDE.md", ".claude/CLAUDE.md")
# Larger memory is refused: it is sent with every request of every session in the folder (the CLI
# itself warns past about 40,000 characters).
LIMIT_BYTES = 100_000


@dataclass(frozen=True)
class Memory:
    """One memory file as the editor shows it. ``opened`` is None while the file does not exist
    (the first save makes it); ``problem`` says why it cannot be edited (a link, not a file)."""

    path: str
    present: tuple[str, ...]  # which of NAMES exist (as anything: a link too)
    opened: Opened | None = None
    problem: str = ""

    @property
    def exists(self) -> bool:
        return self.path in self.present

    @property
    def editable(self) -> bool:
        return not self.problem and (self.opened is None or self.opened.editable)


def _present(place: Place) -> tuple[str, ...]:
    return tuple(name for name in NAMES if edits.exists(place=place, path=name))


def _checked(path: str) -> str:
    if path not in NAMES:
        raise FileRefused(f"Project memory is {' or '.join(NAMES)}; {path[:80]!r} is not one of them.")
    return path


def open_memory(*, place: Place, path: str = "") -> Memory:
    """The memory file ``path`` (one of :data:`NAMES`; by default the first that exists, else
    ``CLAUDE.md``) as the editor shows it."""
    present = _present(place)
    path = _checked(path) if path else next(iter(present), NAMES[0])
    if path not in present:
        if path != NAMES[0]:
            return Memory(path=path, present=present, problem=f"There is no {path}: edit {NAMES[0]} instead.")
        return Memory(path=path, present=present)
    try:
        opened = files.open_file(place=place, path=path)
    except FileRefused as exc:
        if exc.status == 404:
            return Memory(path=path, present=present)  # gone meanwhile
        return Memory(path=path, present=present, problem=str(exc))
    problem = _problem(opened)
    return Memory(path=path, present=present, opened=opened, problem=problem)


def _problem(opened: Opened) -> str:
    if opened.kind == "link":
        return (
            f"{opened.path} is a symbolic link (to {opened.target}): it is never opened or written here. "
            "Delete the link in Files, then save your memory here as a file of its own."
        )
    if opened.kind in ("other", "folder"):
        return f"{opened.path} is not a regular file: delete or rename it in Files, then save your memory here."
    if opened.kind in ("binary", "image") or opened.cut:
        return f"{opened.path} is not a text file this editor can edit: look at it in Files."
    if opened.size > LIMIT_BYTES:
        return (
            f"{opened.path} is {opened.size:,} bytes; memory is edited here up to {LIMIT_BYTES:,} bytes. "
            "Shorten it in Files, or split it into files it imports with @path."
        )
    return ""


def save_memory(*, place: Place, path: str, text: str, expected: Version | None) -> Version:
    """Save ``text`` as the memory file ``path``: over the version the page opened (``expected``),
    or as a new ``CLAUDE.md`` when the page found none (``expected`` None). Raises
    :class:`EditConflict` (nothing written) if the file is not what the page opened."""
    path = _checked(path)
    if "\0" in text:
        raise FileRefused("The text holds a NUL character: remove it, then save again.")
    text = text.replace("\r\n", "\n")
    size = len(text.encode("utf-8", "replace"))
    if size > LIMIT_BYTES:
        raise FileRefused(
            f"Your text is {size:,} bytes; project memory may be at most {LIMIT_BYTES:,} bytes (the agent reads it "
            "with every request). Shorten it, or move parts into files it imports with @path.",
            status=413,
        )
    if expected is not None:
        return edits.save(place=place, path=path, text=text, expected=expected)
    if path != NAMES[0]:
        raise FileRefused(f"There is no {path} to save: edit {NAMES[0]} instead.", status=404)
    try:
        # Only a new file: whatever is there now (written since the page opened, or a link) is not replaced.
        return edits.create_with(place=place, path=path, data=text.encode("utf-8", "replace"))
    except FileExistsError:
        raise EditConflict(path, files.open_file(place=place, path=path)) from None
