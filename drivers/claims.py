"""Which task holds which file of a repository: a small JSON store shared with the hook.

No Django here. The app writes the
same store (after each run, from ``git``), always under an exclusive ``flock``, so a hook and
the app never lose each other's updates. The first task to touch a file holds it until that
task is merged or discarded.

Layout: ``{"claims": {"<path>": {"task": 3}}, "titles": {"3": "..."}, "blocked": {"4": [{"path", "task", "title"}]}}``
with paths relative to the repository root.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Holder:
    path: str
    task: int
    title: str


@dataclass(frozen=True)
class Refusal:
    """Why an edit is refused: ``reason`` is what the agent reads; ``holder`` the task holding the file, if that is why."""

    reason: str
    holder: Holder | None = None

    @property
    def shown(self) -> str:
        """What a person reads in the task's log, in the board's words."""
        if self.holder is not None:
            return f"Paused: conflicts with #{self.holder.task} ({self.holder.path})"
        return f"Edit refused: {self.reason}"


def store_path(state_dir: str | os.PathLike[str], repo: str | os.PathLike[str]) -> Path:
    """The store of one repository, in a folder of its own: a task's sandbox is shown only that folder."""
    digest = hashlib.sha256(str(Path(repo).resolve()).encode()).hexdigest()[:16]
    store = Path(state_dir) / digest / "claims.json"
    legacy = Path(state_dir) / f"claims-{digest}.json"
    if legacy.exists() and not store.exists():
        store.parent.mkdir(parents=True, exist_ok=True)
        os.replace(legacy, store)
    return store


@contextlib.contextmanager
def _locked(store: Path) -> Iterator[dict[str, Any]]:
    store.parent.mkdir(parents=True, exist_ok=True)
    with open(store.with_suffix(".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            try:
                data = json.loads(store.read_text())
            except (OSError, ValueError):
                data = {}
            data.setdefault("claims", {})
            data.setdefault("blocked", {})
            before = json.dumps(data, sort_keys=True)
            yield data
            if json.dumps(data, sort_keys=True) != before:
                tmp = store.with_suffix(f".tmp{os.getpid()}")
                tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
                os.replace(tmp, store)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def register(store: Path, *, task: int, title: str) -> None:
    """Remember a task's title, so a refusal can name the task that holds a file."""
    with _locked(store) as data:
        data.setdefault("titles", {})[str(task)] = title


def claim(store: Path, *, task: int, paths: Iterable[str], block: bool = False) -> list[Holder]:
    """Claim the free ``paths`` for ``task``; the ones other tasks hold come back as conflicts.

    With ``block`` the conflicts are also remembered as "blocked" for ``task`` (the hook does
    this when it refuses a tool call, so the app can pause the task and say why).
    """
    conflicts = []
    with _locked(store) as data:
        titles = data.setdefault("titles", {})
        for path in paths:
            held = data["claims"].get(path)
            if held is None or held["task"] == task:
                data["claims"][path] = {"task": task}
            else:
                holder = int(held["task"])
                conflicts.append(Holder(path=path, task=holder, title=str(titles.get(str(holder), ""))))
        if block and conflicts:
            known = data["blocked"].setdefault(str(task), [])
            for c in conflicts:
                entry = {"path": c.path, "task": c.task, "title": c.title}
                if entry not in known:
                    known.append(entry)
    return conflicts


def release(store: Path, *, task: int) -> None:
    """Free every file ``task`` holds and forget what blocked it (merge, discard)."""
    with _locked(store) as data:
        data["claims"] = {p: h for p, h in data["claims"].items() if h["task"] != task}
        data["blocked"].pop(str(task), None)
        data.setdefault("titles", {}).pop(str(task), None)


def peek_blocked(store: Path, *, task: int) -> bool:
    with _locked(store) as data:
        return bool(data["blocked"].get(str(task)))


def take_blocked(store: Path, *, task: int) -> list[Holder]:
    """What the hook refused ``task`` since the last call, and forget it."""
    with _locked(store) as data:
        entries = data["blocked"].pop(str(task), [])
    return [Holder(path=e["path"], task=int(e["task"]), title=str(e.get("title", ""))) for e in entries]


def held_by(store: Path, *, task: int) -> list[str]:
    with _locked(store) as data:
        return sorted(p for p, h in data["claims"].items() if h["task"] == task)


# ---------------------------------------------------------------------------------------
# A task's file edit, checked before it runs (the task's PreToolUse hook)

PATH_KEYS = ("file_path", "notebook_path", "path")


def check_edit(tool_input: object, *, cwd: object, store: Path, task: int, root: Path) -> Refusal | None:
    """Whether ``task`` may make this edit: None lets it run (and the task now holds the file);
    else why it is refused (:class:`Refusal`). An edit outside the task's worktree,
    inside ``.git`` or of a file another unmerged task holds is refused."""
    if not isinstance(tool_input, dict):
        tool_input = {}
    raw = next((tool_input.get(k) for k in PATH_KEYS if isinstance(tool_input.get(k), str)), None)
    if not raw:
        return None
    if not isinstance(cwd, str) or not cwd:
        cwd = str(root)
    # Real paths on both sides: the CLI reports resolved paths while the root may be configured
    # through a symlink, and a symlink inside the worktree must not lead out of it.
    try:
        target = Path(os.path.realpath(os.path.join(cwd, raw)))
    except ValueError:  # an embedded NUL byte
        return Refusal(f"{raw!r} is not a valid file path.")
    root = Path(os.path.realpath(root))
    try:
        rel = target.relative_to(root)
    except ValueError:
        return Refusal(
            f"{raw} is outside this task's worktree {root}. This task may only change files inside "
            f"its worktree; write to the matching path under {root} instead."
        )
    if rel.parts[:1] == (".git",):
        return Refusal("Changing files inside .git is not allowed for a task.")
    conflicts = claim(store, task=task, paths=[rel.as_posix()], block=True)
    if conflicts:
        holder = conflicts[0]
        return Refusal(
            f"{holder.path} is being changed by task #{holder.task} ({holder.title}), which is not merged "
            "yet. Do not work around this (no copies, no shell redirection). Stop here and say which file "
            "you need: this task is paused and will be resumed automatically once that task is merged.",
            holder=holder,
        )
    return None
