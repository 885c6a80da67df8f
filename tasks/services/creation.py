"""Creating a task: check its project's repository, save it as queued, schedule it."""

from __future__ import annotations

import contextlib
import os
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
from members import roles
from runtime import Engine

from ..models import Task, TaskEvent
from .common import NotAllowed, TaskRefused
from .places import branch_for, repository, store_for, worktree_for
from .state import TransitionRefused, created, transition

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
    if not await sync_to_async(roles.may_run)(user):
        raise NotAllowed(roles.VIEWER_REFUSAL)
    try:
        place = await sync_to_async(project_for)(user, project)
    except ProjectRefused as exc:
        raise TaskRefused(str(exc)) from exc
    if not place.shared:
        try:
            await sync_to_async(own_folder_of)(user)
        except agents.SandboxUnavailable as exc:
            raise TaskRefused(str(exc)) from exc
        except git.GitError as exc:
            raise TaskRefused(
                f"Your own folder could not be made a git repository ({exc}). Tell an admin: the server's log has more."
            ) from exc
    root = place.path.resolve()
    where = "your own folder" if not place.shared else f"the project {project!r}"
    repo = await _repository(place.key, root, where)
    base = await git.current_branch(repo)
    if not base or not await git.branch_exists(repo, base):
        raise TaskRefused(
            f"The repository {root} has no commit on a branch yet (or HEAD is detached). "
            "Commit something on a branch first: tasks branch off it."
        )
    title_text = title.strip() or title_from(prompt)
    task = await Task.objects.acreate(
        created_by=user,
        title=title_text[:TITLE_LENGTH],
        prompt=prompt,
        project=project,
        repo_path=str(root),
        base_branch=base,
        priority=priority,
        skip_permissions=skip_permissions,
        status=Task.Status.PENDING,
        queued_at=timezone.now(),
        next_prompt=prompt,
    )
    try:
        # Names from the id only.
        task.worktree_path = str(worktree_for(root, task.pk))
        task.branch = branch_for(task.pk)
        # The session exists from the start (its folder not yet), so a task's page follows its log at once.
        task.session = await sync_to_async(new_session)(task)
        await task.asave(update_fields=["worktree_path", "branch", "session"])
        await sync_to_async(created)(task=task, by=user)
        # Queued only now: a scheduler kicked by another request meanwhile must not claim a task
        # whose worktree and session are not saved yet (its run would start in no worktree at all).
        task = await transition(task_id=task.pk, event=TaskEvent.QUEUE, by=user, why="ready to run")
    except TransitionRefused as exc:
        task = exc.task  # paused or discarded from the board meanwhile: it stays so
    except Exception:
        # Half made (a full disk, say), it would sit on the board never to run: it goes, if it can.
        with contextlib.suppress(Exception):
            await Task.objects.filter(pk=task.pk).adelete()
            if task.session_id is not None:
                await Session.objects.filter(pk=task.session_id).adelete()
        raise
    await sync_to_async(claims.register)(store_for(task), task=task.pk, title=task.title)
    engine.kick_tasks()
    return task


async def _repository(project: str, root: Path, where: str) -> git.Repo:
    """The repository at the top of ``root``, through its own ``.git`` only (never one around it,
    nor a ``.git`` that is a link); refused, saying what to do, if there is none."""
    dot_git = root / ".git"
    if os.path.islink(dot_git):
        raise TaskRefused(
            f"The .git of {where} ({root}) is a symbolic link, which tasks do not follow. Replace it with the "
            "repository's own .git folder (or ask an admin to), then create the task again."
        )
    try:
        repo = repository(project, root)
    except agents.SandboxUnavailable as exc:
        raise TaskRefused(str(exc)) from exc
    if os.path.lexists(dot_git) and await git.is_repository(repo):
        return repo
    around = _repository_around(root)
    inside = (
        f" It lies inside the repository {around}, which tasks never use: they would branch and merge there."
        if around
        else ""
    )
    raise TaskRefused(
        f"Tasks need a git repository, and {where} ({root}) is not the top of one.{inside} Run `git init` in "
        f"{root} and make a first commit (a chat in it can do that), or ask an admin to set CLAUDE_PROJECTS to a "
        "repository for the team's tasks."
    )


def _repository_around(root: Path) -> Path | None:
    """The nearest folder above ``root`` with a ``.git`` (found without running git there)."""
    for folder in root.parents:
        if os.path.lexists(folder / ".git"):
            return folder
    return None


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
