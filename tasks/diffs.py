"""A task's patch (``git diff --stat --patch``) as the page shows it: per file, lines coloured.

Lines keep git's own ``+``/``-`` so a copied hunk is still a patch; the page colours them by kind.
Each line also carries its numbers in the old and the new version (from the hunk headers), which
review comments point at, and a file's lines pair up for the side-by-side view.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from chat.toolcards import Line, Lines

# A file's lines shown before the rest folds away behind "Show all".
FILE_PREVIEW_LINES = 400
# A file with more lines than this in its diff starts collapsed on the review page.
LARGE_FILE_LINES = 400
_HUNK = re.compile(r"^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@")
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


@dataclass(frozen=True)
class Row:
    """One line of a file's diff with its numbers: ``old`` in the base's version (context and
    removed lines), ``new`` in the branch's (context and added lines); hunk and meta lines have none."""

    kind: str  # add, del, ctx, hunk, meta
    text: str
    old: int | None = None
    new: int | None = None

    @property
    def body(self) -> str:
        """The line without git's ``+``/``-``/space in front."""
        return self.text[1:] if self.kind in ("add", "del", "ctx") else self.text


@dataclass(frozen=True)
class Pair:
    """A row of the side-by-side view: the old line on the left, the new one on the right."""

    left: Row | None
    right: Row | None
    kind: str = ""  # "hunk" or "meta" for a row across both sides


@dataclass
class FileDiff:
    path: str
    status: str = "modified"  # added, deleted, renamed, modified, binary
    old_path: str = ""
    added: int = 0
    removed: int = 0
    raw: list[Line] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)

    @property
    def lines(self) -> Lines:
        return Lines.of(self.raw, preview=FILE_PREVIEW_LINES)

    @property
    def large(self) -> bool:
        return len(self.rows) > LARGE_FILE_LINES

    def pairs(self) -> list[Pair]:
        """The rows side by side: a run of removed lines faces the added lines that follow it."""
        out: list[Pair] = []
        dels: list[Row] = []
        adds: list[Row] = []

        def flush() -> None:
            for i in range(max(len(dels), len(adds))):
                out.append(Pair(dels[i] if i < len(dels) else None, adds[i] if i < len(adds) else None))
            dels.clear()
            adds.clear()

        for row in self.rows:
            if row.kind == "del":
                if adds:
                    flush()
                dels.append(row)
            elif row.kind == "add":
                adds.append(row)
            else:
                flush()
                out.append(Pair(row, row) if row.kind == "ctx" else Pair(row, None, kind=row.kind))
        flush()
        return out

    def row_at(self, side: str, number: int) -> Row | None:
        """The row of line ``number`` on ``side`` ("old" or "new"), if the diff shows it."""
        for row in self.rows:
            if (row.old if side == "old" else row.new) == number and (row.kind == "ctx" or row.kind == _KIND[side]):
                return row
        return None

    def changed_old_lines(self) -> set[int]:
        """Lines of the old version this diff changes: removed (or replaced) ones, and for a pure
        insertion the lines either side of it (an insertion between lines 4 and 5 touches both)."""
        touched: set[int] = set()
        last_old, replacing = 0, False
        for row in self.rows:
            if row.kind == "hunk":
                match = _HUNK.match(row.text)
                last_old, replacing = (int(match.group(1)) - 1 if match else 0), False
            elif row.kind == "del" and row.old is not None:
                touched.add(row.old)
                last_old, replacing = row.old, True
            elif row.kind == "ctx" and row.old is not None:
                last_old, replacing = row.old, False
            elif row.kind == "add" and not replacing:
                touched.update(line for line in (last_old, last_old + 1) if line > 0)
        return touched


_KIND = {"old": "del", "new": "add"}


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
    old = new = 0
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
            current.rows.append(Row("hunk", line))
            if match := _HUNK.match(line):
                old, new = int(match.group(1)), int(match.group(2))
        elif in_hunk and line[:1] in ("+", "-", " ", "\\"):
            kind = {"+": "add", "-": "del", " ": "ctx", "\\": "meta"}[line[0]]
            current.added += kind == "add"
            current.removed += kind == "del"
            current.raw.append(Line(kind, line))
            current.rows.append(
                Row(kind, line, old if kind in ("del", "ctx") else None, new if kind in ("add", "ctx") else None)
            )
            old += kind in ("del", "ctx")
            new += kind in ("add", "ctx")
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
        current.rows.append(Row("meta", "Binary file: not shown"))
    elif not line.startswith(_HEADER_PREFIXES):
        return False
    return True
