"""Whose workspace is whose: the folder of a chat or a task, and what a person may do there.

A chat's folder is its working directory (the member's own folder or a shared project); a task's
is its worktree. Reading (the tree, a file, a download, the changes) is for whoever may see the
chat or task; working (writing files, staging, committing, a terminal) for its owner where they
may work (their own folder; a shared project only where the admin lets them work, Project access
"may work") and for staff. A share link's reader gets nothing here: every view needs a login.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.urls import reverse

from chat import projects
from chat.models import Session
from members import roles
from tasks.models import Task, may_act
from tasks.selectors import visible_tasks

KINDS = ("chat", "task")
# A project's folder itself (its memory), not a chat's or a task's: the member's own or a shared one.
PROJECT = "project"


class PlaceRefused(Exception):
    """The folder is not this person's to see or to change; the text says why and what to do."""

    def __init__(self, message: str, *, status: int = 403) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Place:
    """A workspace: where its files are and who looks at them.

    ``base`` is a folder the server trusts (made or configured by it) and ``prefix`` the name of the
    workspace beneath it (a task's ``.worktrees/<id>``, which a chat's agent could have replaced with
    a link): every file is reached from ``base`` through ``prefix`` without following a link."""

    kind: str  # "chat" or "task"
    pk: str
    title: str
    base: Path
    prefix: str
    project: str  # "" for the member's own folder
    may_work: bool
    session: Session | None
    task: Task | None = None

    @property
    def root(self) -> Path:
        return self.base / self.prefix if self.prefix else self.base

    @property
    def key(self) -> str:
        """Names the folder for a terminal (one per member and folder)."""
        return f"{self.kind}-{self.pk}"

    @property
    def back_url(self) -> str:
        if self.kind == PROJECT:
            return reverse("chat:settings")
        return self.task.get_absolute_url() if self.task is not None else self.session.get_absolute_url()  # type: ignore[union-attr]


def _may_work_in(user: AbstractBaseUser | AnonymousUser, project: str) -> bool:
    if not roles.may_run(user):
        return False  # a viewer reads, and runs or changes nothing: no terminal, no edit
    return bool(getattr(user, "is_staff", False)) or projects.may_work(user, project or projects.OWN)


def chat_place(*, user: AbstractBaseUser | AnonymousUser, session_id: uuid.UUID | str) -> Place:
    """A chat's folder: its owner's (and staff's) to see."""
    session = Session.objects.filter(pk=session_id, kind=Session.Kind.CHAT).select_related("owner").first()
    staff = bool(getattr(user, "is_staff", False))
    if session is None or not user.is_authenticated or (session.owner_id != user.pk and not staff):
        raise PlaceRefused(
            "There is no such chat, or it is not yours. Open the Files of one of your chats.", status=404
        )
    return of_chat(session, user=user)


def of_chat(session: Session, *, user: AbstractBaseUser | AnonymousUser) -> Place:
    """The workspace of a chat ``user`` may see (the chat's page checked it)."""
    staff = bool(getattr(user, "is_staff", False))
    return Place(
        kind="chat",
        pk=str(session.pk),
        title=session.title or "Untitled chat",
        base=Path(session.workdir),
        prefix="",
        project=session.project,
        may_work=(session.owner_id == user.pk or staff) and _may_work_in(user, session.project),
        session=session,
    )


def task_place(*, user: AbstractBaseUser | AnonymousUser, task_id: int) -> Place:
    """A task's worktree: for whoever may see the task; its creator (and staff) work there."""
    task = visible_tasks(user).select_related("session", "created_by").filter(pk=task_id).first()
    if task is None:
        raise PlaceRefused("There is no such task, or it is not open to you.", status=404)
    return of_task(task, user=user)


def of_task(task: Task, *, user: AbstractBaseUser | AnonymousUser) -> Place:
    """The worktree of a task ``user`` may see (the task's page checked it)."""
    if not task.worktree_path or not task.has_worktree:
        raise PlaceRefused(
            f"Task #{task.pk} has no worktree any more (it was merged or discarded): its changes are on its page.",
            status=404,
        )
    repo = Path(task.repo_path)
    worktree = Path(task.worktree_path)
    try:
        prefix = worktree.relative_to(repo).as_posix()
    except ValueError:
        raise PlaceRefused(f"Task #{task.pk}'s worktree is not inside its repository.", status=404) from None
    project = "" if task.project == projects.OWN else task.project
    return Place(
        kind="task",
        pk=str(task.pk),
        title=f"#{task.pk} {task.title}",
        base=repo,
        prefix=prefix,
        project=project,
        may_work=may_act(user, task) and _may_work_in(user, project),
        session=task.session,
        task=task,
    )


def place_for(*, user: AbstractBaseUser | AnonymousUser, kind: str, pk: str) -> Place:
    if kind == "chat":
        try:
            return chat_place(user=user, session_id=uuid.UUID(pk))
        except ValueError:
            raise PlaceRefused("There is no such chat.", status=404) from None
    if kind == "task" and pk.isdigit() and len(pk) <= 12:
        return task_place(user=user, task_id=int(pk))
    raise PlaceRefused("There is no such folder.", status=404)


def working_place(*, user: AbstractBaseUser | AnonymousUser, kind: str, pk: str) -> Place:
    """:func:`place_for`, refused (403) unless ``user`` may change it."""
    place = place_for(user=user, kind=kind, pk=pk)
    if not place.may_work:
        raise PlaceRefused(
            "You may look at this folder but not change it: only its owner may, and in a shared project only "
            "those the admin lets work there (Admin → Project access → may work)."
        )
    return place


def project_place(*, user: AbstractBaseUser | AnonymousUser, key: str) -> Place:
    """A project's folder (``default``: the member's own; else a shared project open to them), as its
    memory is edited from the settings page: read by whoever may use it, changed by whoever may work there."""
    if not user.is_authenticated:
        raise PlaceRefused("Log in to see a project's folder.", status=404)
    try:
        project = projects.project_for(user, key)  # type: ignore[arg-type]
    except projects.ProjectRefused as exc:
        raise PlaceRefused(str(exc), status=404) from None
    return Place(
        kind=PROJECT,
        pk=project.key,
        title=project.label,
        base=project.path,
        prefix="",
        project=project.stored_key,
        may_work=_may_work_in(user, project.stored_key),
        session=None,
    )
