"""A task's patch (``git diff --stat --patch``) as the page shows it: per file, lines coloured.

Lines keep git's own ``+``/``-`` so a copied hunk is still a patch; the page colours them by kind.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from chat.toolcards import Line, Lines

# A file's lines shown before the rest folds away behind "Show all".
FILE_PREVIEW_LINES = 400
_HEADER_PREFIXES = (
    "index ",
    "old mode ",
    "new mode ",
    "similarity index ",
    "dissimilarity index ",
    "copy from ",
    "copy to ",
    "--- ",
    "+++ ",
)


@dataclass
class FileDiff:
    path: str
    status: str = "modified"  # added, deleted, renamed, modified, binary
    old_path: str = ""
    added: int = 0
    removed: int = 0
    raw: list[Line] = field(default_factory=list)

    @property
    def lines(self) -> Lines:
        return Lines.of(self.raw, preview=FILE_PREVIEW_LINES)


@dataclass
class Patch:
    files: list[FileDiff]
    notes: list[str]  # what is not a file's diff: "(diff cut)", "not yet committed: ..."

    @property
    def added(self) -> int:
        return sum(f.added for f in self.files)

    @property
    def removed(self) -> int:
        return sum(f.removed for f in self.files)


def _path_of_header(line: str) -> str:
    """``diff --git a/x b/x`` → ``x`` (the new side; paths with " b/" in them are rare)."""
    rest = line[len("diff --git ") :]
    return rest.split(" b/", 1)[1] if " b/" in rest else rest


def parse_patch(text: str) -> Patch:
    """``text`` of ``git diff --stat --patch`` split into files; the stat part is left out (the page
    counts lines itself)."""
    files: list[FileDiff] = []
    notes: list[str] = []
    current: FileDiff | None = None
    in_hunk = False
    for line in text.splitlines():
        if line.startswith("diff --git "):
            current, in_hunk = FileDiff(path=_path_of_header(line)), False
            files.append(current)
        elif current is None:
            if line.strip() and "|" not in line and " changed" not in line:
                notes.append(line.strip())  # not the stat: a note such as "(diff cut)"
        elif line.startswith("@@"):
            in_hunk = True
            current.raw.append(Line("hunk", line))
        elif in_hunk and line[:1] in ("+", "-", " ", "\\"):
            kind = {"+": "add", "-": "del", " ": "ctx", "\\": "meta"}[line[0]]
            current.added += kind == "add"
            current.removed += kind == "del"
            current.raw.append(Line(kind, line))
        elif not in_hunk and _header(current, line):
            continue
        elif line.strip():
            notes.append(line.strip())
    return Patch(files=files, notes=notes)


def _header(current: FileDiff, line: str) -> bool:
    """Read a header line of a file's diff into ``current``; False if it is none."""
    if line.startswith("new file mode"):
        current.status = "added"
    elif line.startswith("deleted file mode"):
        current.status = "deleted"
    elif line.startswith("rename from "):
        current.status, current.old_path = "renamed", line[len("rename from ") :]
    elif line.startswith("rename to "):
        current.path = line[len("rename to ") :]
    elif line.startswith("Binary files "):
        current.status = "binary" if current.status == "modified" else current.status
        current.raw.append(Line("meta", "Binary file: not shown"))
    elif not line.startswith(_HEADER_PREFIXES):
        return False
    return True
