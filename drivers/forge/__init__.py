"""Pull requests on a forge (GitHub, GitLab) through its REST API: a plain module with no Django.

What a project's tasks open pull requests on is a :class:`Repository`: the forge, the project's
path there (``owner/repo``; on GitLab ``group/subgroup/project``) and the API's base URL. It is
named in configuration (:func:`parse_remotes`) or read from a git remote's URL
(:func:`repository_from_url`).

The HTTP calls use :mod:`urllib` with a timeout, never follow a redirect (a redirect to
another host would carry the token there), and raise :class:`ForgeError` subclasses whose text
says what the forge answered; the caller adds what to do about it.

GitHub (REST API version :data:`GITHUB_API_VERSION`): ``POST /repos/{owner}/{repo}/pulls``,
``GET /repos/{owner}/{repo}/pulls?head=owner:branch&base=...&state=open``,
``GET|PATCH /repos/{owner}/{repo}/pulls/{number}``; ``Authorization: Bearer <token>``.
GitLab (API v4): ``POST /projects/{url-encoded path}/merge_requests``,
``GET /projects/{id}/merge_requests?source_branch=...&target_branch=...&state=opened``,
``GET|PUT /projects/{id}/merge_requests/{iid}``; ``PRIVATE-TOKEN: <token>``.
A pull request's review comments and failed checks: :func:`list_feedback` (:mod:`.feedback`).
"""

from __future__ import annotations

from .api import (
    ForgeError,
    NotFound,
    Opened,
    PullRequest,
    Refused,
    State,
    TokenRejected,
    Unreachable,
    close_pull_request,
    get_pull_request,
    open_pull_request,
)
from .feedback import Feedback, Kind, list_feedback
from .remotes import (
    FORGES,
    GITHUB,
    GITHUB_API,
    GITLAB,
    GITLAB_API,
    NAMES,
    RemoteSpec,
    Repository,
    forge_hosts,
    git_auth_config,
    parse_api_url,
    parse_remotes,
    repository_from_url,
    split_url,
)

__all__ = [
    "FORGES",
    "GITHUB",
    "GITHUB_API",
    "GITLAB",
    "GITLAB_API",
    "NAMES",
    "Feedback",
    "ForgeError",
    "Kind",
    "NotFound",
    "Opened",
    "PullRequest",
    "Refused",
    "RemoteSpec",
    "Repository",
    "State",
    "TokenRejected",
    "Unreachable",
    "close_pull_request",
    "forge_hosts",
    "get_pull_request",
    "git_auth_config",
    "list_feedback",
    "open_pull_request",
    "parse_api_url",
    "parse_remotes",
    "repository_from_url",
    "split_url",
]
