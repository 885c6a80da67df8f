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


def projects() -> dict[str, Path]:
    """The repositories tasks may run in: CLAUDE_PROJECTS, with "default" = CLAUDE_WORKDIR."""
    named = {k: Path(v) for k, v in settings.CLAUDE_PROJECTS.items() if k != "default"}
    return {"default": Path(settings.CLAUDE_WORKDIR), **named}


def worktree_for(repo: str | Path, task_id: int) -> Path:
    return Path(repo) / WORKTREES_DIR / str(int(task_id))


def branch_for(task_id: int) -> str:
    return f"{BRANCH_PREFIX}{int(task_id)}"


def store_for(task: Task) -> Path:
    return claims.store_path(settings.CLAUDE_TASK_STATE_DIR, task.repo_path)


def hook_settings(task: Task) -> str:
    """The ``--settings`` JSON with the PreToolUse hook of this task (no user text in it)."""
    command = " ".join(shlex.quote(part) for part in [
        sys.executable, str(HOOK_PROGRAM), "--store", str(store_for(task)), "--task", str(int(task.pk)),
        "--root", task.worktree_path])
    return json.dumps({"hooks": {"PreToolUse": [{"matcher": HOOK_MATCHER, "hooks": [{"type": "command", "command": command}]}]}})


def is_root_without_sandbox() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0 and os.environ.get("IS_SANDBOX") != "1"
