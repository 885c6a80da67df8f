"""A local stand-in for the REST APIs of GitHub and GitLab, for tests only (not part of the product).

It serves both on 127.0.0.1: GitHub under ``/github`` (as ``https://api.github.com``), GitLab
under ``/gitlab/api/v4`` (as ``https://gitlab.com/api/v4``). It checks every request as their
REST documentation defines it (methods, paths, headers, JSON fields) and answers as they do,
including their errors: 401 for a wrong token, GitHub's 422 and GitLab's 409 when a pull request
is already open for the branch, 404 for an unknown repository. A request it does not expect is
answered 400 and kept in :attr:`ForgeStandIn.violations`, which the fixture asserts is empty.

A pull request's review comments and its commits' checks are served too
(tests/forge_feedback_standin.py: :meth:`ForgeStandIn.comment`, :meth:`ForgeStandIn.fail_check`).

Repositories are backed by real bare git repositories: a pull request's branches must exist in
the one :meth:`ForgeStandIn.add_repository` named, as on the forge.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.forge_feedback_standin import FeedbackServing, FeedbackViolation

TOKEN = "forge-test-token-0123456789"
GITHUB_VERSION = "2022-11-28"
GITHUB_CREATE_FIELDS = {"title", "head", "head_repo", "base", "body", "maintainer_can_modify", "draft", "issue"}
GITHUB_UPDATE_FIELDS = {"title", "body", "state", "base", "maintainer_can_modify"}
GITLAB_CREATE_FIELDS = {
    "source_branch",
    "target_branch",
    "title",
    "description",
    "assignee_id",
    "assignee_ids",
    "reviewer_ids",
    "labels",
    "milestone_id",
    "remove_source_branch",
    "squash",
    "target_project_id",
    "allow_collaboration",
    "allow_maintainer_to_push",
    "approvals_before_merge",
    "merge_after",
}
GITLAB_UPDATE_FIELDS = {"state_event", "title", "description", "target_branch", "labels", "assignee_id"}


@dataclass
class Recorded:
    method: str
    path: str  # as sent, still URL-encoded
    query: dict[str, list[str]]
    headers: dict[str, str]  # names in lower case
    json: Any


@dataclass
class Pull:
    number: int
    head: str
    base: str
    title: str
    body: str
    state: str  # GitHub: open/closed; GitLab: opened/closed/merged
    merged: bool = False
    # Review comments, reviews (GitHub) and discussions (GitLab), as the API answers them (tests/forge_feedback_standin.py).
    feedback: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Repo:
    forge: str
    path: str
    bare: Path
    pulls: list[Pull] = field(default_factory=list)
    # By commit: GitHub's check runs and commit statuses; GitLab's pipelines with their jobs.
    checks: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    statuses: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


class ForgeStandIn(FeedbackServing):
    def __init__(self) -> None:
        self.token = TOKEN
        self.requests: list[Recorded] = []
        self.violations: list[str] = []
        self.repos: dict[tuple[str, str], Repo] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # -- set-up -----------------------------------------------------------------------

    def start(self) -> ForgeStandIn:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                standin._handle(self)

            do_POST = do_PATCH = do_PUT = do_DELETE = do_GET

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def github_api(self) -> str:
        return f"{self.url}/github"

    @property
    def gitlab_api(self) -> str:
        return f"{self.url}/gitlab/api/v4"

    def add_repository(self, forge: str, path: str, bare: Path) -> None:
        self.repos[(forge, path)] = Repo(forge, path, bare)

    # -- what happens on the forge ------------------------------------------------------

    def pulls(self, forge: str, path: str) -> list[Pull]:
        return self.repos[(forge, path)].pulls

    def merge(self, forge: str, path: str, number: int) -> None:
        """Someone merges the pull request on the forge."""
        pull = self._find(self.repos[(forge, path)], number)
        assert pull is not None
        pull.state, pull.merged = ("closed" if forge == "github" else "merged"), True

    def calls(self, method: str | None = None) -> list[Recorded]:
        return [r for r in self.requests if method is None or r.method == method]

    # -- serving ------------------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        raw_path, _, query = handler.path.partition("?")
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        recorded = Recorded(
            handler.command,
            raw_path,
            urllib.parse.parse_qs(query),
            {name.lower(): value for name, value in handler.headers.items()},
            body,
        )
        with self._lock:
            self.requests.append(recorded)
            try:
                if not handler.headers.get("User-Agent"):
                    raise Violation("no User-Agent (GitHub refuses requests without one)")
                if raw and handler.headers.get("Content-Type") != "application/json":
                    raise Violation(f"a body sent as {handler.headers.get('Content-Type')!r}, not application/json")
                if raw_path.startswith("/github/"):
                    status, answer = self._github(recorded, raw_path[len("/github") :])
                elif raw_path.startswith("/gitlab/api/v4/"):
                    status, answer = self._gitlab(recorded, raw_path[len("/gitlab/api/v4") :])
                else:
                    raise Violation(f"no API at {raw_path}")
            except (Violation, FeedbackViolation) as exc:
                self.violations.append(f"{handler.command} {handler.path}: {exc}")
                status, answer = 400, {"message": f"stand-in: {exc}"}
        data = json.dumps(answer).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json; charset=utf-8")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _has_branch(self, repo: Repo, branch: str) -> bool:
        done = subprocess.run(
            ["git", "-C", str(repo.bare), "show-ref", "--verify", "--quiet", f"refs/heads/{branch}"], check=False
        )
        return done.returncode == 0

    @staticmethod
    def _find(repo: Repo, number: int) -> Pull | None:
        return next((p for p in repo.pulls if p.number == number), None)

    # GitHub: https://docs.github.com/en/rest/pulls/pulls

    def _github(self, r: Recorded, path: str) -> tuple[int, Any]:
        if r.headers.get("authorization") != f"Bearer {self.token}":
            return 401, {
                "message": "Bad credentials",
                "documentation_url": "https://docs.github.com/rest",
                "status": "401",
            }
        if r.headers.get("accept") != "application/vnd.github+json":
            raise Violation(f"Accept is {r.headers.get('accept')!r}, not application/vnd.github+json")
        if r.headers.get("x-github-api-version") != GITHUB_VERSION:
            raise Violation(f"X-GitHub-Api-Version is {r.headers.get('x-github-api-version')!r}")
        if (served := self.github_feedback(r, path)) is not None:
            return served
        match = re.fullmatch(r"/repos/([^/]+)/([^/]+)/pulls(?:/(\d+))?", path)
        if match is None:
            raise Violation(f"not a pulls endpoint: {path}")
        repo = self.repos.get(("github", f"{match[1]}/{match[2]}"))
        if repo is None:
            return 404, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest", "status": "404"}
        number = int(match[3]) if match[3] else None
        if number is None and r.method == "POST":
            return self._github_create(repo, r.json)
        if number is None and r.method == "GET":
            pulls = [p for p in repo.pulls if self._github_matches(repo, p, r.query)]
            return 200, [self._github_pull(repo, p) for p in pulls]
        pull = self._find(repo, number) if number is not None else None
        if pull is None:
            return 404, {"message": "Not Found", "status": "404"}
        if r.method == "GET":
            return 200, self._github_pull(repo, pull)
        if r.method == "PATCH":
            if not isinstance(r.json, dict) or set(r.json) - GITHUB_UPDATE_FIELDS:
                raise Violation(f"PATCH fields {r.json!r}")
            if r.json.get("state") not in (None, "open", "closed"):
                return 422, {
                    "message": "Validation Failed",
                    "errors": [{"resource": "PullRequest", "field": "state", "code": "invalid"}],
                }
            if pull.merged:
                return 422, {
                    "message": "Validation Failed",
                    "errors": [{"message": "Cannot change a merged pull request"}],
                }
            pull.state = r.json.get("state", pull.state)
            return 200, self._github_pull(repo, pull)
        raise Violation(f"{r.method} on a pull request")

    def _github_matches(self, repo: Repo, pull: Pull, query: dict[str, list[str]]) -> bool:
        state = query.get("state", ["open"])[0]
        owner = repo.path.split("/")[0]
        if "head" in query and query["head"][0] != f"{owner}:{pull.head}":
            return False
        if "base" in query and query["base"][0] != pull.base:
            return False
        return state == "all" or pull.state == state

    def _github_create(self, repo: Repo, body: Any) -> tuple[int, Any]:
        if not isinstance(body, dict):
            raise Violation("the body is not a JSON object")
        if set(body) - GITHUB_CREATE_FIELDS:
            raise Violation(f"fields GitHub does not define: {sorted(set(body) - GITHUB_CREATE_FIELDS)}")
        if not {"head", "base"} <= set(body) or not ("title" in body or "issue" in body):
            raise Violation(f"missing required fields in {sorted(body)}")
        head = str(body["head"]).split(":", 1)[-1]
        for name, branch in (("head", head), ("base", body["base"])):
            if not self._has_branch(repo, branch):
                return 422, {
                    "message": "Validation Failed",
                    "errors": [{"resource": "PullRequest", "field": name, "code": "invalid"}],
                    "documentation_url": "https://docs.github.com/rest/pulls/pulls#create-a-pull-request",
                }
        owner = repo.path.split("/")[0]
        if any(p.head == head and p.base == body["base"] and p.state == "open" for p in repo.pulls):
            return 422, {
                "message": "Validation Failed",
                "errors": [
                    {
                        "resource": "PullRequest",
                        "code": "custom",
                        "message": f"A pull request already exists for {owner}:{head}.",
                    }
                ],
                "documentation_url": "https://docs.github.com/rest/pulls/pulls#create-a-pull-request",
                "status": "422",
            }
        pull = Pull(len(repo.pulls) + 1, head, body["base"], body["title"], body.get("body") or "", "open")
        repo.pulls.append(pull)
        return 201, self._github_pull(repo, pull)

    def _github_pull(self, repo: Repo, pull: Pull) -> dict[str, Any]:
        return {
            "url": f"{self.github_api}/repos/{repo.path}/pulls/{pull.number}",
            "id": 1000 + pull.number,
            "html_url": f"https://github.com/{repo.path}/pull/{pull.number}",
            "number": pull.number,
            "state": pull.state,
            "title": pull.title,
            "body": pull.body,
            "merged": pull.merged,
            "merged_at": "2026-01-05T08:48:14Z" if pull.merged else None,
            "head": {
                "ref": pull.head,
                "label": f"{repo.path.split('/')[0]}:{pull.head}",
                "sha": self.head_sha(repo, pull.head),
            },
            "base": {"ref": pull.base},
        }

    # GitLab: https://docs.gitlab.com/api/merge_requests/

    def _gitlab(self, r: Recorded, path: str) -> tuple[int, Any]:
        if r.headers.get("private-token") != self.token:
            return 401, {"message": "401 Unauthorized"}
        if (served := self.gitlab_feedback(r, path)) is not None:
            return served
        match = re.fullmatch(r"/projects/([^/]+)/merge_requests(?:/(\d+))?", path)
        if match is None:
            raise Violation(f"not a merge requests endpoint (is the project's path URL-encoded?): {path}")
        project_id = urllib.parse.unquote(match[1])
        repo = self.repos.get(("gitlab", project_id))
        if repo is None:
            return 404, {"message": "404 Project Not Found"}
        iid = int(match[2]) if match[2] else None
        if iid is None and r.method == "POST":
            return self._gitlab_create(repo, r.json)
        if iid is None and r.method == "GET":
            wanted = {name: values[0] for name, values in r.query.items()}
            pulls = [
                p
                for p in repo.pulls
                if wanted.get("state", p.state) in (p.state, "all")
                and wanted.get("source_branch", p.head) == p.head
                and wanted.get("target_branch", p.base) == p.base
            ]
            return 200, [self._gitlab_pull(repo, p) for p in pulls]
        pull = self._find(repo, iid) if iid is not None else None
        if pull is None:
            return 404, {"message": "404 Not found"}
        if r.method == "GET":
            return 200, self._gitlab_pull(repo, pull)
        if r.method == "PUT":
            if not isinstance(r.json, dict) or set(r.json) - GITLAB_UPDATE_FIELDS:
                raise Violation(f"PUT fields {r.json!r}")
            event = r.json.get("state_event")
            if event not in (None, "close", "reopen"):
                return 400, {"error": "state_event does not have a valid value"}
            if pull.state != "merged" and event:
                pull.state = "closed" if event == "close" else "opened"
            return 200, self._gitlab_pull(repo, pull)
        raise Violation(f"{r.method} on a merge request")

    def _gitlab_create(self, repo: Repo, body: Any) -> tuple[int, Any]:
        if not isinstance(body, dict):
            raise Violation("the body is not a JSON object")
        if set(body) - GITLAB_CREATE_FIELDS:
            raise Violation(f"fields GitLab does not define: {sorted(set(body) - GITLAB_CREATE_FIELDS)}")
        missing = {"source_branch", "target_branch", "title"} - set(body)
        if missing:
            return 400, {"error": f"{', '.join(sorted(missing))} is missing"}
        for branch in (body["source_branch"], body["target_branch"]):
            if not self._has_branch(repo, branch):
                return 422, {"message": [f"Branch {branch!r} does not exist"]}
        open_one = next(
            (
                p
                for p in repo.pulls
                if p.head == body["source_branch"] and p.base == body["target_branch"] and p.state == "opened"
            ),
            None,
        )
        if open_one is not None:
            return 409, {
                "message": [f"Another open merge request already exists for this source branch: !{open_one.number}"]
            }
        pull = Pull(
            len(repo.pulls) + 1,
            body["source_branch"],
            body["target_branch"],
            body["title"],
            body.get("description") or "",
            "opened",
        )
        repo.pulls.append(pull)
        return 201, self._gitlab_pull(repo, pull)

    def _gitlab_pull(self, repo: Repo, pull: Pull) -> dict[str, Any]:
        return {
            "id": 5000 + pull.number,
            "iid": pull.number,
            "project_id": 42,
            "title": pull.title,
            "description": pull.body,
            "state": pull.state,
            "source_branch": pull.head,
            "target_branch": pull.base,
            "web_url": f"https://gitlab.com/{repo.path}/-/merge_requests/{pull.number}",
            "sha": self.head_sha(repo, pull.head),
            "head_pipeline": self.head_pipeline(repo, pull),
        }


def widgets_with_feature(tmp_path: Path, standin: ForgeStandIn) -> dict[str, Any]:
    """acme/widgets on both stand-in forges (GitLab: acme/tools/widgets), a real bare repository
    with a pushed branch "feature" besides main; the driver's Repository of each, by forge."""
    from drivers import forge
    from tests.task_helpers import bare_remote, git, init_repo

    work = init_repo(tmp_path / "work")
    bare = bare_remote(tmp_path / "widgets.git", work)
    git(work, "switch", "-q", "-c", "feature")
    (work / "f.txt").write_text("f\n")
    git(work, "add", "f.txt")
    git(work, "commit", "-q", "-m", "feature")
    git(work, "push", "-q", "origin", "feature")
    standin.add_repository("github", "acme/widgets", bare)
    standin.add_repository("gitlab", "acme/tools/widgets", bare)
    return {
        "github": forge.Repository("github", "acme/widgets", standin.github_api),
        "gitlab": forge.Repository("gitlab", "acme/tools/widgets", standin.gitlab_api),
    }


class Violation(Exception):
    """A request GitHub's or GitLab's documentation does not define."""
