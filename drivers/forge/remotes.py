"""Which forge repository a project's tasks open pull requests on: named in configuration
(:func:`parse_remotes`) or read from a git remote's URL (:func:`repository_from_url`), and the git
configuration that sends its token. No Django imports.
"""

from __future__ import annotations

import base64
import re
import urllib.parse
from dataclasses import dataclass

GITHUB = "github"
GITLAB = "gitlab"
FORGES = (GITHUB, GITLAB)
NAMES = {GITHUB: "GitHub", GITLAB: "GitLab"}
GITHUB_API = "https://api.github.com"
GITLAB_API = "https://gitlab.com/api/v4"
GITHUB_API_VERSION = "2022-11-28"
USER_AGENT = "claude-code-chat"
# The user name git sends with a token over https (any works for personal tokens).
GIT_USERS = {GITHUB: "x-access-token", GITLAB: "oauth2"}

_NAME = r"[A-Za-z0-9_][A-Za-z0-9_.-]*"
_KEY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_REMOTE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_PATHS = {GITHUB: re.compile(rf"{_NAME}/{_NAME}"), GITLAB: re.compile(rf"{_NAME}(/{_NAME})+")}
_SCP_RE = re.compile(r"(?:[^@/]+@)?(?P<host>[^:/]+):(?P<path>[^/].*)")


@dataclass(frozen=True)
class Repository:
    forge: str
    path: str
    api: str

    @property
    def name(self) -> str:
        return NAMES[self.forge]

    @property
    def web(self) -> str:
        """Where the forge serves git over https (and its pages): what a token may be sent to."""
        if self.forge == GITHUB and self.api.rstrip("/") == GITHUB_API:
            return "https://github.com/"
        parts = urllib.parse.urlsplit(self.api)
        prefix = parts.path.rstrip("/")
        prefix = prefix.removesuffix("/api/v4") if self.forge == GITLAB else ""
        return f"{parts.scheme}://{parts.netloc}{prefix}/"


@dataclass(frozen=True)
class RemoteSpec:
    """A project's entry of the configuration: a git remote, and (else read from its URL) forge and path."""

    remote: str
    forge: str | None = None
    path: str | None = None


# ---------------------------------------------------------------------------------------
# Configuration


def parse_remotes(text: str) -> dict[str, RemoteSpec]:
    """``key=REMOTE[:FORGE[:PATH]]`` entries separated by commas, e.g.
    ``api=origin:github:acme/api,web=upstream:gitlab:acme/web/site,docs=origin``.

    Raises ValueError saying which entry is wrong and how."""
    found: dict[str, RemoteSpec] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        key, sep, value = (part.strip() for part in item.partition("="))
        if not sep or not key or not value:
            raise ValueError(f"{item!r} is not KEY=REMOTE[:FORGE[:PATH]] (entries are separated by commas)")
        if not _KEY_RE.fullmatch(key):
            raise ValueError(f"the key {key!r} may only hold letters, digits, '.', '_' and '-'")
        if key in found:
            raise ValueError(f"the key {key!r} is given twice")
        remote, forge, path = [*value.split(":", 2), None, None][:3]
        if not remote or not _REMOTE_RE.fullmatch(remote):
            raise ValueError(
                f"{key}: the remote {remote!r} is not a git remote's name (letters, digits, '.', '_', '-')"
            )
        if forge is not None and forge not in FORGES:
            raise ValueError(f"{key}: the forge must be {' or '.join(FORGES)}, not {forge!r}")
        if path is not None:
            assert forge is not None
            path = path.strip("/").removesuffix(".git")
            if not _valid_path(forge, path):
                shape = "OWNER/REPO" if forge == GITHUB else "GROUP[/SUBGROUP...]/PROJECT"
                raise ValueError(f"{key}: {path!r} is not a {NAMES[forge]} repository path ({shape})")
        found[key] = RemoteSpec(remote=remote, forge=forge, path=path)
    return found


def parse_api_url(text: str) -> str:
    """An API base URL: http(s), a host, no query; answered without its trailing slash."""
    url = text.strip()
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ValueError(
            f"{text!r} is not an http(s) URL such as https://api.github.com or https://git.example.com/api/v4"
        )
    return url.rstrip("/")


def _valid_path(forge: str, path: str) -> bool:
    return bool(_PATHS[forge].fullmatch(path)) and ".." not in path


def forge_hosts(*, github_api: str, gitlab_api: str) -> dict[str, str]:
    """Hosts whose remote URLs tell their forge: github.com and gitlab.com, and the hosts of the
    configured API URLs (a GitHub Enterprise server, a self-hosted GitLab)."""
    hosts = {"github.com": GITHUB, "gitlab.com": GITLAB}
    for forge, api in ((GITLAB, gitlab_api), (GITHUB, github_api)):
        host = urllib.parse.urlsplit(api).hostname
        if host and host != "api.github.com":
            hosts.setdefault(host.lower(), forge)
    return hosts


def split_url(url: str) -> tuple[str, str] | None:
    """The host and repository path of a git URL (https, ssh, ``git@host:path``), or None (a local path)."""
    url = url.strip()
    if "://" in url:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https", "ssh", "git", "git+ssh", "ssh+git") or not parts.hostname:
            return None
        host, path = parts.hostname, parts.path
    else:
        match = _SCP_RE.fullmatch(url)
        if match is None or "/" in match["host"]:
            return None
        host, path = match["host"], match["path"]
    path = urllib.parse.unquote(path).strip("/").removesuffix(".git")
    return (host.lower(), path) if path else None


def repository_from_url(url: str, *, forge: str | None, github_api: str, gitlab_api: str) -> Repository | None:
    """The repository a git remote's URL names, if its host tells the forge (or ``forge`` is given)."""
    split = split_url(url)
    if split is None:
        return None
    host, path = split
    forge = forge or forge_hosts(github_api=github_api, gitlab_api=gitlab_api).get(host)
    if forge is None or not _valid_path(forge, path):
        return None
    return Repository(forge=forge, path=path, api=github_api if forge == GITHUB else gitlab_api)


def git_auth_config(repository: Repository, token: str) -> dict[str, str]:
    """git configuration that sends ``token`` with https requests to the forge's own host only
    (``http.<url>.extraHeader``); for :func:`drivers.git.push`, which passes it in git's
    environment, never in its argv nor in a file."""
    basic = base64.b64encode(f"{GIT_USERS[repository.forge]}:{token}".encode()).decode()
    return {f"http.{repository.web}.extraHeader": f"Authorization: Basic {basic}"}
