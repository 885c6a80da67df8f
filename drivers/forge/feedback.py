"""What reviewers and CI said on a pull request: its review comments and its failed checks, read
through the forge's REST API (the same client as :mod:`.api`: a timeout on every call, no
redirect followed, :class:`~.api.ForgeError` for a refusal). No Django imports.

GitHub: ``GET /repos/{owner}/{repo}/pulls/{n}/comments`` (comments on lines),
``GET .../pulls/{n}/reviews`` (a review's own text), and for the pull request's head commit
``GET /repos/{owner}/{repo}/commits/{sha}/check-runs`` (failed check runs) and
``GET .../commits/{sha}/status`` (failed commit statuses of the combined status).
GitLab: ``GET /projects/{id}/merge_requests/{iid}/discussions`` (notes, on lines or not; system
notes and resolved threads left out), and the merge request's ``head_pipeline`` with
``GET /projects/{id}/pipelines/{pipeline_id}/jobs?scope[]=failed`` (failed jobs that may not fail).

Each list is read as one page of :data:`PER_PAGE` items (the newest reviews of a busy pull request
may lie beyond it). Everything here is the forge's text, written by whoever may comment there:
untrusted. It is kept as text (NUL and other control characters but newlines and tabs removed,
cut to :data:`BODY_LIMIT`), and only an http(s) address is kept as a link.
"""

from __future__ import annotations

import enum
import re
import urllib.parse
from dataclasses import dataclass
from typing import Any

from .api import Refused, _Client, _client
from .remotes import GITHUB, Repository

PER_PAGE = 100
BODY_LIMIT = 4000
SHORT_LIMIT = 255
# GitHub's check-run conclusions and commit-status states that mean "failed" (cancelled and
# skipped runs, neutral and stale ones are not the code's fault).
FAILED_CONCLUSIONS = frozenset({"failure", "timed_out", "action_required", "startup_failure"})
FAILED_STATUSES = frozenset({"failure", "error"})
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ud800-\udfff]")


class Kind(enum.StrEnum):
    COMMENT = "comment"
    CHECK = "check"


@dataclass(frozen=True)
class Feedback:
    """One review comment or failed check. ``forge_id`` is unique within the pull request
    (``comment:12``, ``review:3``, ``check-run:7``, ``status:9``, ``note:11``, ``job:40``)."""

    forge_id: str
    kind: Kind
    author: str = ""  # who wrote a comment (a check: the app or CI that ran it)
    name: str = ""  # a check's name (GitLab: stage and job)
    path: str = ""  # the file a line comment is on, as the forge names it
    line: int | None = None
    body: str = ""
    url: str = ""


def text(value: Any, limit: int = BODY_LIMIT) -> str:
    """The forge's text, safe to keep and show: a string, no control characters but newlines and
    tabs (nor lone surrogates), at most ``limit`` characters."""
    cleaned = _CONTROL.sub("", value if isinstance(value, str) else "").replace("\r\n", "\n")
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


def link(value: Any) -> str:
    """An http(s) address, else nothing: a ``javascript:`` URL never becomes a link."""
    url = text(value, 2000)
    return url if url.startswith(("https://", "http://")) and not any(c.isspace() for c in url) else ""


def _line(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _list(answer: Any, what: str, client: _Client) -> list[dict[str, Any]]:
    if not isinstance(answer, list):
        raise Refused(
            f"{client.name} at {client.repository.api} answered {what} that are not a list: {str(answer)[:200]}"
        )
    return [item for item in answer if isinstance(item, dict)]


def _ident(kind: str, value: Any) -> str:
    """``kind:id``; an id that is not a small whole number (or a short token) is refused."""
    if isinstance(value, bool) or not (
        (isinstance(value, int) and 0 <= value < 10**18)
        or (isinstance(value, str) and re.fullmatch(r"[\w-]{1,40}", value))
    ):
        raise ValueError(f"a {kind} without a usable id: {str(value)[:50]!r}")
    return f"{kind}:{value}"


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _login(user: Any, key: str) -> str:
    return text(user.get(key), SHORT_LIMIT) if isinstance(user, dict) else ""


# ---------------------------------------------------------------------------------------
# GitHub


def _github(client: _Client, number: int) -> list[Feedback]:
    owner, repo = (urllib.parse.quote(part, safe="") for part in client.repository.path.split("/"))
    base = f"/repos/{owner}/{repo}"
    page = {"per_page": str(PER_PAGE)}
    found: list[Feedback] = []
    pull = client.call("GET", f"{base}/pulls/{int(number)}")
    for item in _list(client.call("GET", f"{base}/pulls/{int(number)}/reviews", query=page), "reviews", client):
        # A review's own text (approvals and drafts say nothing to fix; an empty body holds only line comments).
        if item.get("state") in ("CHANGES_REQUESTED", "COMMENTED") and text(item.get("body")).strip():
            found.append(
                Feedback(
                    forge_id=_ident("review", item.get("id")),
                    kind=Kind.COMMENT,
                    author=_login(item.get("user"), "login"),
                    body=text(item.get("body")),
                    url=link(item.get("html_url")),
                )
            )
    for item in _list(client.call("GET", f"{base}/pulls/{int(number)}/comments", query=page), "comments", client):
        found.append(
            Feedback(
                forge_id=_ident("comment", item.get("id")),
                kind=Kind.COMMENT,
                author=_login(item.get("user"), "login"),
                path=text(item.get("path"), 1024),
                line=_line(item.get("line")) or _line(item.get("original_line")),
                body=text(item.get("body")),
                url=link(item.get("html_url")),
            )
        )
    head = pull.get("head") if isinstance(pull, dict) else None
    sha = head.get("sha") if isinstance(head, dict) else None
    if not isinstance(sha, str) or not re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", sha):
        raise Refused(f"{client.name} answered pull request #{number} without its head commit: {str(head)[:200]}")
    runs = client.call("GET", f"{base}/commits/{sha}/check-runs", query=page)
    for item in _list(runs.get("check_runs") if isinstance(runs, dict) else None, "check runs", client):
        if item.get("conclusion") in FAILED_CONCLUSIONS:
            output = _dict(item.get("output"))
            app = item.get("app")
            found.append(
                Feedback(
                    forge_id=_ident("check-run", item.get("id")),
                    kind=Kind.CHECK,
                    author=_login(app, "name"),
                    name=text(item.get("name"), SHORT_LIMIT),
                    body=text(" ".join(str(output.get(k) or "") for k in ("title", "summary")).strip()),
                    url=link(item.get("html_url")) or link(item.get("details_url")),
                )
            )
    combined = client.call("GET", f"{base}/commits/{sha}/status", query=page)
    for item in _list(combined.get("statuses") if isinstance(combined, dict) else None, "statuses", client):
        if item.get("state") in FAILED_STATUSES:
            found.append(
                Feedback(
                    forge_id=_ident("status", item.get("id")),
                    kind=Kind.CHECK,
                    author=_login(item.get("creator"), "login"),
                    name=text(item.get("context"), SHORT_LIMIT),
                    body=text(item.get("description")),
                    url=link(item.get("target_url")),
                )
            )
    return found


# ---------------------------------------------------------------------------------------
# GitLab


def _gitlab(client: _Client, iid: int) -> list[Feedback]:
    project = f"/projects/{urllib.parse.quote(client.repository.path, safe='')}"
    page = {"per_page": str(PER_PAGE)}
    found: list[Feedback] = []
    discussions = client.call("GET", f"{project}/merge_requests/{int(iid)}/discussions", query=page)
    for discussion in _list(discussions, "discussions", client):
        notes = [n for n in discussion.get("notes") or [] if isinstance(n, dict)]
        if any(n.get("resolvable") and n.get("resolved") for n in notes[:1]):
            continue  # a resolved thread: nothing left to do
        for note in notes:
            if note.get("system"):
                continue  # "added 1 commit", "changed the description": GitLab's own notes
            position = _dict(note.get("position"))
            new_line = _line(position.get("new_line"))
            found.append(
                Feedback(
                    forge_id=_ident("note", note.get("id")),
                    kind=Kind.COMMENT,
                    author=_login(note.get("author"), "username"),
                    path=text(position.get("new_path") if new_line else position.get("old_path"), 1024),
                    line=new_line or _line(position.get("old_line")),
                    body=text(note.get("body")),
                )
            )
    merge_request = client.call("GET", f"{project}/merge_requests/{int(iid)}")
    pipeline = merge_request.get("head_pipeline") if isinstance(merge_request, dict) else None
    if isinstance(pipeline, dict) and isinstance(pipeline.get("id"), int) and pipeline.get("status") == "failed":
        jobs = client.call("GET", f"{project}/pipelines/{pipeline['id']}/jobs", query={"scope[]": "failed", **page})
        for job in _list(jobs, "jobs", client):
            if job.get("status") != "failed" or job.get("allow_failure"):
                continue
            stage, name = text(job.get("stage"), 100), text(job.get("name"), SHORT_LIMIT)
            found.append(
                Feedback(
                    forge_id=_ident("job", job.get("id")),
                    kind=Kind.CHECK,
                    author="GitLab CI",
                    name=text(f"{stage}: {name}" if stage else name, SHORT_LIMIT),
                    body=text(job.get("failure_reason")),
                    url=link(job.get("web_url")),
                )
            )
    return found


def list_feedback(repository: Repository, token: str, number: int, *, timeout: float) -> list[Feedback]:
    """The pull request's review comments and failed checks (of its head commit; GitLab: of its
    head pipeline), as the forge reports them now. Blocks on the network: async callers run it in
    a thread."""
    client = _client(repository, token, timeout)
    try:
        return _github(client, number) if repository.forge == GITHUB else _gitlab(client, number)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise Refused(
            f"{client.name} at {repository.api} answered something unexpected about the review of "
            f"{'#' if repository.forge == GITHUB else '!'}{number} ({type(exc).__name__}: {exc})"
        ) from None
