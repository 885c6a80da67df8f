"""Where a member's agents may work: their own folder, and the shared projects the admin opens to them.

"default" is always the member's own folder, ``CLAUDE_WORKDIR/<user id>``, made on first use.
A shared project (a key of CLAUDE_PROJECTS) is open to staff, and to the members, groups or
everyone a :class:`~chat.models.ProjectAccess` row names.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User
from django.db.models import Q

from .models import ProjectAccess

OWN = "default"
# How pages name a member's own folder (never by its path on the server).
OWN_LABEL = "Your own folder"


class ProjectRefused(Exception):
    """A project that does not exist or that this member may not use; the text says which and what to do."""


@dataclass(frozen=True)
class Project:
    key: str  # OWN for the member's own folder
    path: Path

    @property
    def shared(self) -> bool:
        return self.key != OWN

    @property
    def label(self) -> str:
        """How pickers name it: a shared project by its key, the member's own folder in words."""
        return self.key if self.shared else OWN_LABEL

    @property
    def stored_key(self) -> str:
        """What a chat keeps as its project ("" for the member's own folder)."""
        return self.key if self.shared else ""


def own_folder(user: AbstractBaseUser) -> Path:
    """The member's own working directory (named by the user id only, never by a name someone typed)."""
    return Path(settings.CLAUDE_WORKDIR) / str(int(user.pk))


def known_keys() -> list[str]:
    """Every project key there is (whether a given member may use it or not)."""
    return [OWN, *sorted(_shared())]


def _shared() -> dict[str, Path]:
    return {key: Path(path) for key, path in settings.CLAUDE_PROJECTS.items() if key != OWN}


def may_use(user: AbstractBaseUser | AnonymousUser, key: str) -> bool:
    if key == OWN:
        return user.is_authenticated
    if key not in _shared() or not user.is_authenticated or not user.is_active:
        return False
    if getattr(user, "is_staff", False):
        return True
    grants = ProjectAccess.objects.filter(project=key)
    return grants.filter(Q(everyone=True) | Q(users=user) | Q(groups__user=user)).exists()


def may_work(user: AbstractBaseUser | AnonymousUser, key: str) -> bool:
    """Whether ``user`` may change a project's files by hand (edit, upload, commit, a terminal):
    their own folder; a shared project only for staff and whom its access row lets work there."""
    if key == OWN:
        return user.is_authenticated and user.is_active
    if not may_use(user, key):
        return False
    if getattr(user, "is_staff", False):
        return True
    grants = ProjectAccess.objects.filter(project=key, may_work=True)
    return grants.filter(Q(everyone=True) | Q(users=user) | Q(groups__user=user)).exists()


def projects_for(user: User) -> list[Project]:
    """The member's own folder first, then the shared projects open to them."""
    found = [Project(key=OWN, path=own_folder(user))]
    found += [Project(key=key, path=path) for key, path in sorted(_shared().items()) if may_use(user, key)]
    return found


def project_for(user: User, key: str | None) -> Project:
    """The project ``key`` (None or "" is the member's own folder), if this member may use it."""
    key = key or OWN
    if key == OWN:
        return Project(key=OWN, path=own_folder(user))
    shared = _shared()
    known = ", ".join([OWN, *sorted(k for k in shared if may_use(user, k))])
    if key not in shared:
        raise ProjectRefused(f"There is no project {key[:64]!r}. Yours: {known}.")
    if not may_use(user, key):
        raise ProjectRefused(
            f"You may not use the project {key!r}; an admin can open it to you (Project access). Yours: {known}."
        )
    return Project(key=key, path=shared[key])


def place_label(*, key: str, owner: AbstractBaseUser | None, viewer: AbstractBaseUser | AnonymousUser) -> str:
    """Where a chat or task of ``owner`` works, as ``viewer`` is told: a shared project by its key,
    a member's own folder as the viewer's own or as its owner's ("ada's folder", for staff)."""
    if key and key != OWN:
        return key
    if owner is None:
        return "a former member's folder"
    if viewer.is_authenticated and owner.pk == viewer.pk:
        return OWN_LABEL
    return f"{owner.get_username()}'s folder"


def project_of(workdir: str | Path) -> str:
    """The key of the shared project at ``workdir``, or "" (own folder, a worktree, ...)."""
    for key, path in _shared().items():
        if Path(path) == Path(workdir):
            return key
    return ""
