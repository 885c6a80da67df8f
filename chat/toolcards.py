"""What a tool call and its result look like on a page: an edit as a diff, a command with its
output, a read as a path and a line count, a todo list as a checklist, a search as its pattern and
hit count. Long parts are split into what shows and the rest, which the page folds away.

Pure functions over the tool's input and output; the partials in ``templates/chat/tools.html``
lay them out. Every text goes through a :class:`~chat.paths.PathView`: paths relative to the chat's
working directory, never the server's folders (on a share page, no absolute path at all).
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .paths import PathView

# Lines shown before the rest folds away behind "Show all".
PREVIEW_LINES = 24
EDIT_TOOLS = ("Edit", "MultiEdit", "Write", "NotebookEdit")
SEARCH_TOOLS = ("Grep", "Glob")


@dataclass(frozen=True)
class Line:
    """One line of a diff or an output; ``kind``: add, del, ctx, hunk (a separator), file, meta."""

    kind: str
    text: str


@dataclass(frozen=True)
class Lines:
    """Lines split into those shown and those folded away."""

    shown: list[Line]
    more: list[Line]

    @property
    def count(self) -> int:
        return len(self.shown) + len(self.more)

    @classmethod
    def of(cls, lines: list[Line], *, preview: int = PREVIEW_LINES) -> Lines:
        # Folding away one or two lines saves nothing: show them.
        cut = len(lines) if len(lines) <= preview + 4 else preview
        return cls(shown=lines[:cut], more=lines[cut:])


@dataclass(frozen=True)
class Todo:
    text: str
    status: str  # pending, in_progress, completed


@dataclass(frozen=True)
class ToolCard:
    """A tool call: ``kind`` picks its layout (edit, bash, read, todo, search, mcp, other)."""

    tool: str
    kind: str
    subject: str = ""  # the path, command or pattern
    detail: str = ""  # a description, a search's folder or file filter
    lines: Lines | None = None  # an edit's diff, a command's lines
    added: int = 0
    removed: int = 0
    todos: list[Todo] = field(default_factory=list)
    raw: str = ""  # the input as JSON, for tools without a layout of their own


@dataclass(frozen=True)
class ResultCard:
    """A tool's result: a one-line summary and its output, folded when long."""

    summary: str
    lines: Lines
    fold_all: bool = False  # only the summary shows (a file's content, a search's hits)


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def diff_lines(old: str, new: str) -> list[Line]:
    """``old`` to ``new`` line by line: unchanged lines as context, removed and added lines marked."""
    a, b = old.splitlines(), new.splitlines()
    out: list[Line] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op == "equal":
            out += [Line("ctx", line) for line in a[i1:i2]]
            continue
        out += [Line("del", line) for line in a[i1:i2]]
        out += [Line("add", line) for line in b[j1:j2]]
    return out


def _edit_card(tool: str, data: dict[str, Any], hide: Callable[[str], str]) -> ToolCard:
    path = hide(_text(data.get("file_path")) or _text(data.get("notebook_path")))
    if tool == "Write":
        lines = [Line("add", hide(line)) for line in _text(data.get("content")).splitlines()]
    elif tool == "NotebookEdit":
        lines = [Line("add", hide(line)) for line in _text(data.get("new_source")).splitlines()]
    else:
        edits = data.get("edits") if tool == "MultiEdit" else [data]
        lines = []
        for number, edit in enumerate(edits if isinstance(edits, list) else []):
            if not isinstance(edit, dict):
                continue
            if number:
                lines.append(Line("hunk", "⋯"))
            lines += [
                Line(line.kind, hide(line.text))
                for line in diff_lines(_text(edit.get("old_string")), _text(edit.get("new_string")))
            ]
    return ToolCard(
        tool=tool,
        kind="edit",
        subject=path,
        lines=Lines.of(lines),
        added=sum(line.kind == "add" for line in lines),
        removed=sum(line.kind == "del" for line in lines),
    )


def _todos(data: dict[str, Any], hide: Callable[[str], str]) -> list[Todo]:
    todos = data.get("todos")
    return [
        Todo(text=hide(_text(t.get("content"))), status=_text(t.get("status")) or "pending")
        for t in (todos if isinstance(todos, list) else [])
        if isinstance(t, dict)
    ]


def _hider(paths: PathView | None) -> Callable[[str], str]:
    return paths.text if paths is not None else lambda text: text


def tool_card(tool: str, tool_input: object, *, paths: PathView | None = None) -> ToolCard:
    """How the call of ``tool`` with ``tool_input`` shows (``paths``: how its paths are shown)."""
    hide = _hider(paths)

    data = tool_input if isinstance(tool_input, dict) else {}
    if tool in EDIT_TOOLS:
        return _edit_card(tool, data, hide)
    if tool == "Bash":
        command = hide(_text(data.get("command")))
        return ToolCard(tool=tool, kind="bash", subject=command, detail=hide(_text(data.get("description"))))
    if tool == "Read":
        span = ""
        if isinstance(data.get("offset"), int) or isinstance(data.get("limit"), int):
            start = data.get("offset") or 1
            span = f"from line {start}" + (f", {data['limit']} lines" if isinstance(data.get("limit"), int) else "")
        return ToolCard(tool=tool, kind="read", subject=hide(_text(data.get("file_path"))), detail=span)
    if tool == "TodoWrite":
        return ToolCard(tool=tool, kind="todo", todos=_todos(data, hide))
    if tool in SEARCH_TOOLS:
        where = " ".join(
            part for part in (hide(_text(data.get("path"))), _text(data.get("glob")), _text(data.get("type"))) if part
        )
        return ToolCard(tool=tool, kind="search", subject=hide(_text(data.get("pattern"))), detail=where)
    raw = hide(json.dumps(tool_input, indent=2, ensure_ascii=False))
    if tool.startswith("mcp__") and "__" in tool[len("mcp__") :]:
        # An MCP server's tool (mcp__<server>__<tool>): named as the chat's MCP panel names it.
        server, name = tool[len("mcp__") :].split("__", 1)
        return ToolCard(tool=name, kind="mcp", detail=f"MCP server {server}", raw=raw)
    return ToolCard(tool=tool, kind="other", raw=raw)


# The CLI numbers the lines of a file it read: "    12→text" (older versions: a tab).
_NUMBERED_RE = re.compile(r"^\s*\d+(→|\t)")
_FOUND_RE = re.compile(r"^Found (\d+) (file|match|line)", re.IGNORECASE)
_NOTHING_RE = re.compile(r"^No (files|matches) found", re.IGNORECASE)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def result_card(tool: str, text: str, *, is_error: bool = False, paths: PathView | None = None) -> ResultCard:
    """How the result ``text`` of ``tool`` shows (``paths``: how its paths are shown)."""
    text = _hider(paths)(text)
    raw = text.rstrip("\n").split("\n") if text.strip() else []
    lines = Lines.of([Line("out", line) for line in raw])
    if is_error:
        return ResultCard(summary="Tool error: " + (raw[0] if raw else "no details"), lines=lines)
    if tool == "Read":
        numbered = [line for line in raw if _NUMBERED_RE.match(line)]
        if numbered and not _NUMBERED_RE.sub("", numbered[-1]):
            numbered.pop()  # the empty "line" after a file's last newline
        return ResultCard(summary=_plural(len(numbered) or len(raw), "line"), lines=lines, fold_all=True)
    if tool in SEARCH_TOOLS:
        first = raw[0] if raw else ""
        if not raw or _NOTHING_RE.match(first):
            return ResultCard(summary="No hits", lines=Lines.of([]))
        if found := _FOUND_RE.match(first):
            hits = Lines.of([Line("out", line) for line in raw[1:]])
            return ResultCard(summary=_plural(int(found.group(1)), found.group(2).lower()), lines=hits, fold_all=True)
        return ResultCard(
            summary=_plural(len([line for line in raw if line.strip()]), "hit"), lines=lines, fold_all=True
        )
    if tool == "Bash":
        return ResultCard(summary="Output" if raw else "No output", lines=lines)
    if tool in (*EDIT_TOOLS, "TodoWrite"):
        return ResultCard(summary=raw[0] if raw else "Done", lines=lines, fold_all=True)
    return ResultCard(summary=raw[0] if raw else "No output", lines=lines, fold_all=True)
