"""Where a task works: its project, worktree, branch and claims store, all named from the id only;
and how git runs there.

In a member's own folder the ``.git`` is theirs (their chats may change it): every git command the
server runs there, for the folder or a task's worktree in it, runs in a sandbox as their agents
do (see :func:`chat.services.agents.git_sandbox`). In a shared project no agent can write ``.git``
(a chat there gets it read-only), so the server runs git itself, on the git directory it names.
"""

from __future__ import annotations

import os
from pathlib import Path

from django.conf import settings

from chat.projects import OWN
from chat.services import agents
from drivers import claims, git

from ..models import Task

WORKTREES_DIR = ".worktrees"
BRANCH_PREFIX = "auto-claude/"


def worktree_for(repo: str | Path, task_id: int) -> Path:
    return Path(repo) / WORKTREES_DIR / str(int(task_id))


def branch_for(task_id: int) -> str:
    return f"{BRANCH_PREFIX}{int(task_id)}"


def store_for(task: Task) -> Path:
    return claims.store_path(settings.CLAUDE_TASK_STATE_DIR, task.repo_path)


def repository(project: str, path: str | Path) -> git.Repo:
    """The repository at the top of ``path`` (its ``.git`` folder) for tasks of ``project``."""
    root = Path(path)
    return git.Repo.at(root, jail=agents.git_sandbox(root) if project == OWN else None)


def repo_of(task: Task) -> git.Repo:
    return repository(task.project, task.repo_path)


def worktree_of(task: Task) -> git.Repo:
    """The task's worktree, with the git directory git keeps for it (``.git/worktrees/<id>``), never
    the one its ``.git`` file names: that file is in the agent's hands."""
    return repo_of(task).worktree(task.worktree_path)


async def remove_worktree_and_branch(task: Task) -> None:
    """Remove the task's worktree folder (whatever its agent left there) and its branch."""
    repo = repo_of(task)
    await git.worktree_remove(repo, task.worktree_path)
    await git.branch_delete(repo, task.branch, force=True)


def is_root_without_sandbox() -> bool:
    """The CLI refuses skip-permissions mode as root; inside the sandbox the agent is not root."""
    return (
        settings.CLAUDE_SANDBOX == "off"
        and hasattr(os, "geteuid")
        and os.geteuid() == 0
        and os.environ.get("IS_SANDBOX") != "1"
    )
