"""Where a task works: its project, worktree, branch and claims store, all named from the id only."""

from __future__ import annotations

import os
from pathlib import Path

from django.conf import settings

from drivers import claims

from ..models import Task

WORKTREES_DIR = ".worktrees"
BRANCH_PREFIX = "auto-claude/"


def worktree_for(repo: str | Path, task_id: int) -> Path:
    return Path(repo) / WORKTREES_DIR / str(int(task_id))


def branch_for(task_id: int) -> str:
    return f"{BRANCH_PREFIX}{int(task_id)}"


def store_for(task: Task) -> Path:
    return claims.store_path(settings.CLAUDE_TASK_STATE_DIR, task.repo_path)


def is_root_without_sandbox() -> bool:
    """The CLI refuses skip-permissions mode as root; inside the sandbox the agent is not root."""
    return (
        settings.CLAUDE_SANDBOX == "off"
        and hasattr(os, "geteuid")
        and os.geteuid() == 0
        and os.environ.get("IS_SANDBOX") != "1"
    )
