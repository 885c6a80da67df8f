"""Where a task works: its project, worktree, branch and claims store, all named from the id only."""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path

from django.conf import settings

from drivers import claims

from ..models import Task

WORKTREES_DIR = ".worktrees"
BRANCH_PREFIX = "auto-claude/"
HOOK_MATCHER = "Write|Edit|MultiEdit|NotebookEdit"
HOOK_PROGRAM = Path(claims.__file__).resolve().parent / "hook.py"


def worktree_for(repo: str | Path, task_id: int) -> Path:
    return Path(repo) / WORKTREES_DIR / str(int(task_id))


def branch_for(task_id: int) -> str:
    return f"{BRANCH_PREFIX}{int(task_id)}"


def store_for(task: Task) -> Path:
    return claims.store_path(settings.CLAUDE_TASK_STATE_DIR, task.repo_path)


def hook_interpreter() -> str:
    """The Python that runs the hook: the real interpreter (a venv's link would lead nowhere in the sandbox)."""
    return os.path.realpath(sys.executable)


def hook_folders(task: Task) -> tuple[tuple[Path, ...], tuple[Path, ...]]:
    """What the task's sandbox must show for its hook: read-only (the interpreter, the hook's
    code) and writable (this repository's claims store, nothing of other repositories')."""
    readonly = (Path(sys.base_prefix), HOOK_PROGRAM.parent)
    store = store_for(task)
    store.parent.mkdir(parents=True, exist_ok=True)
    return readonly, (store.parent,)


def hook_settings(task: Task) -> str:
    """The ``--settings`` JSON with the PreToolUse hook of this task (no user text in it)."""
    command = " ".join(shlex.quote(part) for part in [
        hook_interpreter(), "-I", str(HOOK_PROGRAM), "--store", str(store_for(task)), "--task", str(int(task.pk)),
        "--root", task.worktree_path])
    return json.dumps({"hooks": {"PreToolUse": [{"matcher": HOOK_MATCHER, "hooks": [{"type": "command", "command": command}]}]}})


def is_root_without_sandbox() -> bool:
    """The CLI refuses skip-permissions mode as root; inside the sandbox the agent is not root."""
    return (settings.CLAUDE_SANDBOX == "off" and hasattr(os, "geteuid") and os.geteuid() == 0
            and os.environ.get("IS_SANDBOX") != "1")
