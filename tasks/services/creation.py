"""Creating a task: check its project's repository, save it as queued, schedule it."""

from __future__ import annotations

from pathlib import Path

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.models import User
from django.utils import timezone

import runtime
from chat.models import Session
from chat.services.turns import title_from
from drivers import claims, claude, git

from ..models import Task
from .common import TaskRefused, changed
from .places import branch_for, projects, store_for, worktree_for

TITLE_LENGTH = 120
PRIORITY_RANGE = (-1000, 1000)


async def create_task(*, user: User | None, prompt: str, title: str = "", project: str = "default",
                      priority: int = 0, skip_permissions: bool = False) -> Task:
    """Check the project's repository, save the task as queued, and schedule it.

    The arguments are validated at the boundary (the form, the API schema); an unknown project
    or a folder that is not a repository with a commit is refused here."""
    known = projects()
    if project not in known:
        raise TaskRefused(f"Unknown project {project!r}; known: {', '.join(sorted(known))}.")
    repo = known[project]
    if not await git.is_repo(repo):
        raise TaskRefused(f"The project {project!r} at {repo} is not a git repository. Run `git init` there and make a "
                          "first commit, or set CLAUDE_PROJECTS to point at a repository.")
    repo = Path(await git.toplevel(repo))
    base = await git.current_branch(repo)
    if not base or not await git.branch_exists(repo, base):
        raise TaskRefused(f"The repository {repo} has no commit on a branch yet (or HEAD is detached). "
                          "Commit something on a branch first: tasks branch off it.")
    title_text = title.strip() or title_from(prompt)
    task = await Task.objects.acreate(
        created_by=user, title=title_text[:TITLE_LENGTH], prompt=prompt, project=project, repo_path=str(repo),
        base_branch=base, priority=priority, skip_permissions=skip_permissions, status=Task.Status.QUEUED,
        queued_at=timezone.now(), next_prompt=prompt)
    # Names from the id only.
    task.worktree_path = str(worktree_for(repo, task.pk))
    task.branch = branch_for(task.pk)
    # The session exists from the start (its folder not yet), so a task's page follows its log at once.
    task.session = await sync_to_async(new_session)(task)
    await task.asave(update_fields=["worktree_path", "branch", "session"])
    await sync_to_async(claims.register)(store_for(task), task=task.pk, title=task.title)
    await changed(task.pk)
    runtime.current().tasks.kick()
    return task


def new_session(task: Task) -> Session:
    """The task's Claude session; its working directory (the worktree) is made by git later."""
    session = Session(owner=task.created_by, title=f"Task #{task.pk}: {task.title}"[:TITLE_LENGTH], workdir=task.worktree_path)
    session.transcript_path = str(claude.transcript_path(settings.CLAUDE_CONFIG_DIR, task.worktree_path, str(session.id)))
    session.save(force_insert=True)
    return session
