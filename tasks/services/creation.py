"""Creating a task: check its project's repository, save it as queued, schedule it."""

from __future__ import annotations

import contextlib
from pathlib import Path

from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.utils import timezone

from chat.models import Session
from chat.projects import OWN, ProjectRefused, project_for
from chat.services import agents
from chat.services.chats import own_folder_of
from chat.services.turns import title_from
from drivers import claims, claude, git
from runtime import Engine

from ..models import Task
from .common import TaskRefused, changed
from .places import branch_for, store_for, worktree_for

TITLE_LENGTH = 120
PRIORITY_RANGE = (-1000, 1000)


async def create_task(
    *,
    engine: Engine,
    user: User | None,
    prompt: str,
    title: str = "",
    project: str = "default",
    priority: int = 0,
    skip_permissions: bool = False,
) -> Task:
    """Check the project's repository, save the task as queued, and schedule it.

    The arguments are validated at the boundary (the form, the API schema); an unknown project
    or a folder that is not a repository with a commit is refused here."""
    if user is None:
        raise TaskRefused("A task needs a person who asks for it.")
    try:
        place = await sync_to_async(project_for)(user, project)
    except ProjectRefused as exc:
        raise TaskRefused(str(exc)) from exc
    if not place.shared:
        await sync_to_async(own_folder_of)(user)
    repo = place.path
    # The folder itself must be the top of a repository: never the repository around it.
    if not await git.is_toplevel(repo):
        raise TaskRefused(
            await _not_a_repository(
                repo.resolve(), "your own folder" if not place.shared else f"the project {project!r}"
            )
        )
    repo = repo.resolve()
    base = await git.current_branch(repo)
    if not base or not await git.branch_exists(repo, base):
        raise TaskRefused(
            f"The repository {repo} has no commit on a branch yet (or HEAD is detached). "
            "Commit something on a branch first: tasks branch off it."
        )
    title_text = title.strip() or title_from(prompt)
    task = await Task.objects.acreate(
        created_by=user,
        title=title_text[:TITLE_LENGTH],
        prompt=prompt,
        project=project,
        repo_path=str(repo),
        base_branch=base,
        priority=priority,
        skip_permissions=skip_permissions,
        status=Task.Status.PENDING,
        queued_at=timezone.now(),
        next_prompt=prompt,
    )
    try:
        # Names from the id only.
        task.worktree_path = str(worktree_for(repo, task.pk))
        task.branch = branch_for(task.pk)
        # The session exists from the start (its folder not yet), so a task's page follows its log at once.
        task.session = await sync_to_async(new_session)(task)
        # Queued only now: a scheduler kicked by another request meanwhile must not claim a task
        # whose worktree and session are not saved yet (its run would start in no worktree at all).
        task.status = Task.Status.QUEUED
        await task.asave(update_fields=["worktree_path", "branch", "session", "status"])
    except Exception:
        # Half made (a full disk, say), it would sit on the board never to run: it goes, if it can.
        with contextlib.suppress(Exception):
            await Task.objects.filter(pk=task.pk).adelete()
            if task.session_id is not None:
                await Session.objects.filter(pk=task.session_id).adelete()
        raise
    await sync_to_async(claims.register)(store_for(task), task=task.pk, title=task.title)
    await changed(task.pk)
    engine.kick_tasks()
    return task


async def _not_a_repository(repo: Path, where: str) -> str:
    around = await git.toplevel_of(repo)
    inside = (
        (f" It lies inside the repository {around}, which tasks never use: they would branch and merge there.")
        if around
        else ""
    )
    return (
        f"Tasks need a git repository, and {where} ({repo}) is not the top of one.{inside} Run `git init` in "
        f"{repo} and make a first commit (a chat in it can do that), or ask an admin to set CLAUDE_PROJECTS to a "
        "repository for the team's tasks."
    )


def new_session(task: Task) -> Session:
    """The task's Claude session, with a CLI config folder of its own; its working directory (the
    worktree) is made by git later."""
    assert task.created_by_id is not None
    session = Session(
        owner_id=task.created_by_id,
        title=f"Task #{task.pk}: {task.title}"[:TITLE_LENGTH],
        kind=Session.Kind.TASK,
        workdir=task.worktree_path,
        project=task.project if task.project != OWN else "",
    )
    session.config_dir = str(agents.config_folder(owner_id=task.created_by_id, session_id=str(session.id)))
    session.transcript_path = str(claude.transcript_path(session.config_dir, task.worktree_path, str(session.id)))
    session.save(force_insert=True)
    return session
