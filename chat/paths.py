"""Paths as a person is shown them: within the folder they work in, never the server's folders.

A chat's agent works in a folder of the server (``/srv/app/data/workdir/7``); its tool calls and
results name files by their absolute paths there. Pages show those paths relative to the chat's
working directory (or the task's worktree, or the project), and a path outside it only by its last
name (``…/name``). Tool cards, task pages, the project pickers and share pages all go through here.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from django.conf import settings

# An absolute path: a slash that does not follow a letter, digit, dot, colon, slash or "<"
# (so not the middle of a URL, a fraction, "and/or" or a closing tag), then path segments.
_ABSOLUTE_PATH_RE = re.compile(r"(?<![\w.:/~<-])/(?:[\w.@+=,-]+/)*[\w.@+=,-]+/?")
# What may follow the root in a longer name ("/srv/work2", "/srv/work.bak" are not inside "/srv/work").
_NAME_GOES_ON = r"(?![\w.@+=,-])"


def relative_path(path: str | Path, *, root: str | Path) -> str:
    """``path`` relative to ``root`` ("." for ``root`` itself) when inside it, else ``…/name``.
    A relative path is shown as it is."""
    text = str(path)
    if not text.startswith("/"):
        return text
    base, full = str(root).rstrip("/"), text.rstrip("/") or "/"
    if base and full == base:
        return "."
    if base and full.startswith(base + "/"):
        return full[len(base) + 1 :]
    name = PurePosixPath(full).name
    return f"…/{name}" if name else full


def hide_paths(text: str, *, root: str | Path, only_under: Iterable[str | Path] | None = None) -> str:
    """``text`` with every path inside ``root`` made relative to it (as :func:`relative_path` does),
    and the absolute paths outside it cut to ``…/name``: all of them (``only_under`` None: a share
    page tells nothing of the server), or only those under the folders ``only_under`` names (the
    server's own: a member's page keeps ``/usr/bin/env`` in a command as it is)."""
    if not text:
        return text
    base = str(root).rstrip("/")
    if base:
        # The root as text first: its name may hold characters the path pattern does not take.
        text = re.sub(re.escape(base) + r"(/|" + _NAME_GOES_ON + ")", lambda match: "" if match.group(1) else ".", text)
    folders = None if only_under is None else [str(f).rstrip("/") for f in only_under if str(f).rstrip("/")]

    def cut(match: re.Match[str]) -> str:
        found = match.group(0)
        if folders is not None and not any(found == f or found.startswith(f + "/") for f in folders):
            return found
        return relative_path(found, root="")

    return _ABSOLUTE_PATH_RE.sub(cut, text)


def server_folders() -> tuple[str, ...]:
    """The server's own folders an agent's paths may name: its data folder, the members' folders,
    the CLI config folders and the shared projects (as configured and as resolved)."""
    configured = (
        settings.DATA_DIR,
        settings.CLAUDE_WORKDIR,
        settings.CLAUDE_CONFIG_DIR,
        settings.CLAUDE_ARCHIVE_DIR,
        *settings.CLAUDE_PROJECTS.values(),
    )
    return _resolved(tuple(str(folder) for folder in configured))


@functools.lru_cache(maxsize=16)
def _resolved(folders: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(sorted({*folders, *(str(Path(folder).resolve()) for folder in folders)}))


@dataclass(frozen=True)
class PathView:
    """How the paths in one chat's (or task's) content are shown: relative to ``root``, its working
    directory; outside it cut to ``…/name``: every absolute path on a share page (``shared``), the
    server's folders only on a member's own pages."""

    root: str
    shared: bool = False

    def text(self, text: str) -> str:
        return hide_paths(text, root=self.root, only_under=None if self.shared else server_folders())
