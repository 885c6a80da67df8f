"""Where a shared project's tasks open pull requests: its git remote, the forge, and the token.

A project of CLAUDE_PROJECTS has a remote when CLAUDE_PROJECT_REMOTES names one for it
(``key=REMOTE[:FORGE[:PATH]]``; what is left out is read from the remote's URL), or else when
its repository's ``origin`` has a URL whose host tells the forge (github.com, gitlab.com, or the
host of CLAUDE_GITHUB_API_URL / CLAUDE_GITLAB_API_URL). A member's own folder ("default") has
none: a token of the server is never used for folders each member configures.

The token is read from the environment (``CLAUDE_FORGE_TOKEN_<KEY>``) each time it is used:
it is never stored in the database, in settings or in a file, nor shown on a page.

The model reads :func:`has_remote` for its transition table (board renders included), so the
origin URL a project's git configuration holds is cached until that configuration changes.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from drivers import forge, git

OWN = "default"  # chat.projects.OWN: each member's own folder
DEFAULT_REMOTE = "origin"
TOKEN_PREFIX = "CLAUDE_FORGE_TOKEN_"


@dataclass(frozen=True)
class Target:
    """A project's remote: the forge repository it names, or why that cannot be told."""

    project: str
    remote: str
    repository: forge.Repository | None
    problem: str = ""


def token_variable(project: str) -> str:
    """``CLAUDE_FORGE_TOKEN_<KEY>``: the key upper-cased, other characters than letters and digits as ``_``."""
    return TOKEN_PREFIX + re.sub(r"[^A-Z0-9]", "_", project.upper())


def token_for(project: str) -> str:
    return os.environ.get(token_variable(project), "").strip()


def target_for(project: str, repo_path: str | Path) -> Target | None:
    """The project's remote, or None when it has none (see the module's text)."""
    if project == OWN or project not in settings.CLAUDE_PROJECTS:
        return None
    spec = settings.CLAUDE_PROJECT_REMOTES.get(project)
    apis = {"github_api": settings.CLAUDE_GITHUB_API_URL, "gitlab_api": settings.CLAUDE_GITLAB_API_URL}
    if spec is not None and spec.forge and spec.path:
        api = apis["github_api"] if spec.forge == forge.GITHUB else apis["gitlab_api"]
        return Target(project, spec.remote, forge.Repository(forge=spec.forge, path=spec.path, api=api))
    remote = spec.remote if spec is not None else DEFAULT_REMOTE
    url = _remote_url(str(repo_path), remote, _config_stamp(repo_path))
    repository = forge.repository_from_url(url, forge=spec.forge if spec else None, **apis) if url else None
    if repository is not None:
        return Target(project, remote, repository)
    if spec is None:
        return None  # an origin that tells no forge (or none at all): no remote
    if url is None:
        problem = (
            f"The repository of project {project!r} has no git remote {remote!r} (CLAUDE_PROJECT_REMOTES names it). "
            f"Add it there with `git remote add {remote} <url>`."
        )
    else:
        problem = (
            f"The URL of the remote {remote!r} of project {project!r} ({url}) does not tell its forge and "
            f'repository. Name them: CLAUDE_PROJECT_REMOTES="{project}={remote}:github:OWNER/REPO" '
            f"(or {remote}:gitlab:GROUP/PROJECT)."
        )
    return Target(project, remote, None, problem)


def has_remote(project: str, repo_path: str | Path) -> bool:
    return target_for(project, repo_path) is not None


def _config_stamp(repo_path: str | Path) -> int:
    """Changes whenever the repository's git configuration (its remotes) does."""
    for candidate in (Path(repo_path) / ".git" / "config", Path(repo_path) / ".git"):
        try:
            return candidate.stat().st_mtime_ns
        except OSError:
            continue
    return 0


@functools.lru_cache(maxsize=256)
def _remote_url(repo_path: str, remote: str, stamp: int) -> str | None:
    # A shared project's repository: no agent writes its .git, so the server reads it itself.
    return git.remote_url_now(git.Repo.at(repo_path), remote)
