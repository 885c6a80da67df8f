"""The PreToolUse hook of a task: refuse an edit of a file another unmerged task holds.

The CLI runs it before each Write/Edit/MultiEdit/NotebookEdit of a task, with the tool call
as JSON on stdin::

    python /path/to/drivers/hook.py --store CLAIMS.json --task 4 --root WORKTREE

(no user text on that command line: titles come from the store).

Exit 0 lets the call through (and the task now holds the file); exit 2 refuses it, and what
is printed on stderr is handed to the model as the reason. An edit outside the task's
worktree is refused as well: the task must not change the main checkout or another task's
worktree. Only the standard library and :mod:`drivers.claims` are imported, so it starts fast.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    # Run as a file by the CLI (cwd = the worktree): make the project importable.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from drivers import claims

PATH_KEYS = ("file_path", "notebook_path", "path")


def decide(call: dict[str, Any], *, store: Path, task: int, root: Path) -> tuple[int, str]:
    tool_input = call.get("tool_input")
    if not isinstance(tool_input, dict):
        tool_input = {}
    raw = next((tool_input.get(k) for k in PATH_KEYS if isinstance(tool_input.get(k), str)), None)
    if not raw:
        return 0, ""
    cwd = call.get("cwd")
    if not isinstance(cwd, str) or not cwd:
        cwd = str(root)
    # Real paths on both sides: the CLI reports resolved paths while the root may be configured
    # through a symlink, and a symlink inside the worktree must not lead out of it.
    try:
        target = Path(os.path.realpath(os.path.join(cwd, raw)))
    except ValueError:  # an embedded NUL byte
        return 2, f"{raw!r} is not a valid file path."
    root = Path(os.path.realpath(root))
    try:
        rel = target.relative_to(root)
    except ValueError:
        return 2, (f"{raw} is outside this task's worktree {root}. This task may only change files inside "
                   f"its worktree; write to the matching path under {root} instead.")
    if rel.parts[:1] == (".git",):
        return 2, "Changing files inside .git is not allowed for a task."
    conflicts = claims.claim(store, task=task, paths=[rel.as_posix()], block=True)
    if conflicts:
        c = conflicts[0]
        return 2, (f"{c.path} is being changed by task #{c.task} ({c.title}), which is not merged yet. "
                   "Do not work around this (no copies, no shell redirection). Stop here and say which file you "
                   "need: this task is paused and will be resumed automatically once that task is merged.")
    return 0, ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", required=True)
    parser.add_argument("--task", type=int, required=True)
    parser.add_argument("--root", required=True)
    args = parser.parse_args(argv)
    try:
        call = json.loads(sys.stdin.read() or "{}")
    except ValueError:
        call = {}
    code, reason = decide(call if isinstance(call, dict) else {}, store=Path(args.store), task=args.task,
                          root=Path(args.root))
    if reason:
        print(reason, file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
