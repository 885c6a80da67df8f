"""The stand-in's review comments and checks (tests only): what reviewers and CI said on a pull
request, served as GitHub's and GitLab's REST APIs document them, and set up by the tests
(:meth:`FeedbackServing.comment`, :meth:`FeedbackServing.fail_check`).

GitHub: https://docs.github.com/en/rest/pulls/comments, .../pulls/reviews, .../checks/runs
("List check runs for a Git reference"), .../commits/statuses ("Get the combined status for a
specific reference"). GitLab: https://docs.gitlab.com/api/discussions/ (merge requests),
https://docs.gitlab.com/api/jobs/ ("List pipeline jobs"), and a merge request's ``head_pipeline``.

Checks belong to a commit, as on the forge: a check failed on the branch's head is no longer the
head's once something new is pushed.
"""

from __future__ import annotations

import re
import subprocess
import urllib.parse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.forge_standin import Pull, Recorded, Repo

PAGE_QUERY = {"per_page", "page"}
JOB_SCOPES = {
    "created",
    "pending",
    "running",
    "failed",
    "success",
    "canceled",
    "skipped",
    "waiting_for_resource",
    "manual",
}


class FeedbackViolation(Exception):
    """A request the forge's documentation does not define."""


class FeedbackServing:
    repos: dict[tuple[str, str], Repo]

    # -- set-up: what happens on the forge ----------------------------------------------

    def comment(
        self,
        forge: str,
        path: str,
        number: int,
        *,
        author: str,
        body: str,
        file: str = "",
        line: int | None = None,
        resolved: bool = False,
    ) -> None:
        """Someone comments on the pull request: on a line of ``file``, or as a review's text."""
        repo = self.repos[(forge, path)]
        pull = self._pull_of(repo, number)
        ident = 700 + sum(len(p.feedback) for p in repo.pulls)
        if forge == "github":
            if file:
                pull.feedback.append(
                    {
                        "kind": "comment",
                        "id": ident,
                        "pull_request_review_id": 90 + ident,
                        "user": {"login": author, "type": "User"},
                        "body": body,
                        "path": file,
                        "line": line,
                        "original_line": line,
                        "side": "RIGHT",
                        "commit_id": self.head_sha(repo, pull.head),
                        "html_url": f"https://github.com/{path}/pull/{number}#discussion_r{ident}",
                    }
                )
            else:
                pull.feedback.append(
                    {
                        "kind": "review",
                        "id": ident,
                        "user": {"login": author, "type": "User"},
                        "body": body,
                        "state": "CHANGES_REQUESTED",
                        "html_url": f"https://github.com/{path}/pull/{number}#pullrequestreview-{ident}",
                        "commit_id": self.head_sha(repo, pull.head),
                    }
                )
            return
        note: dict[str, Any] = {
            "id": ident,
            "type": "DiffNote" if file else "DiscussionNote",
            "body": body,
            "author": {"id": 3, "username": author, "name": author},
            "system": False,
            "resolvable": True,
            "resolved": resolved,
            "noteable_type": "MergeRequest",
            "noteable_iid": number,
        }
        if file:
            note["position"] = {
                "position_type": "text",
                "new_path": file,
                "old_path": file,
                "new_line": line,
                "old_line": None,
                "head_sha": self.head_sha(repo, pull.head),
            }
        system = {"id": ident + 1000, "type": None, "body": "added 1 commit", "system": True, "author": note["author"]}
        pull.feedback.append({"kind": "discussion", "id": f"d{ident}", "individual_note": not file, "notes": [note]})
        pull.feedback.append({"kind": "discussion", "id": f"s{ident}", "individual_note": True, "notes": [system]})

    def fail_check(self, forge: str, path: str, number: int, *, name: str, summary: str, passing: str = "") -> None:
        """CI fails ``name`` on the pull request's head commit (and ``passing`` passes beside it)."""
        repo = self.repos[(forge, path)]
        pull = self._pull_of(repo, number)
        sha = self.head_sha(repo, pull.head)
        ident = 300 + len(repo.checks.get(sha, []))
        if forge == "github":
            runs = repo.checks.setdefault(sha, [])
            runs.append(self._check_run(path, sha, ident, name, "failure", summary))
            if passing:
                runs.append(self._check_run(path, sha, ident + 1, passing, "success", "All good"))
            repo.statuses.setdefault(sha, []).append(
                {
                    "id": 500 + ident,
                    "state": "success",
                    "context": "ci/legacy",
                    "description": "Passed",
                    "target_url": "https://ci.example.com/1",
                    "creator": {"login": "ci-bot"},
                }
            )
            return
        pipeline = {"id": 60 + ident, "iid": ident, "sha": sha, "ref": pull.head, "status": "failed"}
        pipeline["web_url"] = f"https://gitlab.com/{path}/-/pipelines/{pipeline['id']}"
        jobs = [self._job(path, 900 + ident, "test", name, "failed", pipeline)]
        if passing:
            jobs.append(self._job(path, 901 + ident, "lint", passing, "success", pipeline))
        repo.checks[sha] = [{"pipeline": pipeline, "jobs": jobs}]

    @staticmethod
    def _check_run(path: str, sha: str, ident: int, name: str, conclusion: str, summary: str) -> dict[str, Any]:
        return {
            "id": ident,
            "head_sha": sha,
            "name": name,
            "status": "completed",
            "conclusion": conclusion,
            "html_url": f"https://github.com/{path}/runs/{ident}",
            "details_url": f"https://ci.example.com/runs/{ident}",
            "output": {"title": f"{name}: {conclusion}", "summary": summary, "text": None},
            "app": {"slug": "github-actions", "name": "GitHub Actions"},
        }

    @staticmethod
    def _job(path: str, ident: int, stage: str, name: str, status: str, pipeline: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": ident,
            "name": name,
            "stage": stage,
            "status": status,
            "allow_failure": False,
            "failure_reason": "script_failure" if status == "failed" else None,
            "web_url": f"https://gitlab.com/{path}/-/jobs/{ident}",
            "pipeline": {k: pipeline[k] for k in ("id", "sha", "ref", "status")},
        }

    @staticmethod
    def head_sha(repo: Repo, branch: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(repo.bare), "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}"],
            capture_output=True,
            text=True,
            check=False,
        )
        return done.stdout.strip()

    @staticmethod
    def _pull_of(repo: Repo, number: int) -> Pull:
        pull = next((p for p in repo.pulls if p.number == number), None)
        assert pull is not None, f"no pull request {number} in {repo.path}"
        return pull

    # -- serving ------------------------------------------------------------------------

    @staticmethod
    def _check_query(r: Recorded, allowed: set[str]) -> None:
        if unknown := set(r.query) - allowed:
            raise FeedbackViolation(f"query parameters the API does not define: {sorted(unknown)}")
        if r.method != "GET":
            raise FeedbackViolation(f"{r.method}: these endpoints are only read")
        per_page = r.query.get("per_page", ["30"])[0]
        if not per_page.isdigit() or not 1 <= int(per_page) <= 100:
            raise FeedbackViolation(f"per_page={per_page!r} (1 to 100)")

    def github_feedback(self, r: Recorded, path: str) -> tuple[int, Any] | None:
        """GitHub's review and check endpoints (None: ``path`` is none of them)."""
        match = re.fullmatch(
            r"/repos/([^/]+)/([^/]+)/(?:pulls/(\d+)/(comments|reviews)|commits/([^/]+)/(check-runs|status))", path
        )
        if match is None:
            return None
        self._check_query(
            r, PAGE_QUERY | ({"filter", "check_name", "status", "app_id"} if match[6] == "check-runs" else set())
        )
        repo = self.repos.get(("github", f"{match[1]}/{match[2]}"))
        if repo is None:
            return 404, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest", "status": "404"}
        if match[3]:
            pull = next((p for p in repo.pulls if p.number == int(match[3])), None)
            if pull is None:
                return 404, {"message": "Not Found", "status": "404"}
            kind = "comment" if match[4] == "comments" else "review"
            return 200, [
                {k: v for k, v in item.items() if k != "kind"} for item in pull.feedback if item["kind"] == kind
            ]
        sha = urllib.parse.unquote(match[5])
        if not re.fullmatch(r"[0-9a-f]{40}", sha):
            raise FeedbackViolation(f"a commit reference that is not the pull request's head sha: {sha!r}")
        if match[6] == "check-runs":
            runs = repo.checks.get(sha, [])
            return 200, {"total_count": len(runs), "check_runs": runs}
        statuses = repo.statuses.get(sha, [])
        states = {s["state"] for s in statuses}
        state = (
            "failure"
            if states & {"failure", "error"}
            else "pending"
            if "pending" in states or not statuses
            else "success"
        )
        return 200, {"state": state, "sha": sha, "total_count": len(statuses), "statuses": statuses}

    def gitlab_feedback(self, r: Recorded, path: str) -> tuple[int, Any] | None:
        """GitLab's discussions and pipeline jobs (None: ``path`` is neither)."""
        match = re.fullmatch(r"/projects/([^/]+)/(?:merge_requests/(\d+)/discussions|pipelines/(\d+)/jobs)", path)
        if match is None:
            return None
        self._check_query(r, PAGE_QUERY | ({"scope[]", "include_retried"} if match[3] else set()))
        if bad := set(r.query.get("scope[]", [])) - JOB_SCOPES:
            raise FeedbackViolation(f"scope[] values GitLab does not define: {sorted(bad)}")
        repo = self.repos.get(("gitlab", urllib.parse.unquote(match[1])))
        if repo is None:
            return 404, {"message": "404 Project Not Found"}
        if match[2]:
            pull = next((p for p in repo.pulls if p.number == int(match[2])), None)
            if pull is None:
                return 404, {"message": "404 Not found"}
            return 200, [{k: v for k, v in item.items() if k != "kind"} for item in pull.feedback]
        for pipelines in repo.checks.values():
            for found in pipelines:
                if found["pipeline"]["id"] == int(match[3]):
                    scopes = set(r.query.get("scope[]", []))
                    return 200, [job for job in found["jobs"] if not scopes or job["status"] in scopes]
        return 404, {"message": "404 Not found"}

    def head_pipeline(self, repo: Repo, pull: Pull) -> dict[str, Any] | None:
        """A merge request's ``head_pipeline``: the latest pipeline of its head commit, if any."""
        pipelines = repo.checks.get(self.head_sha(repo, pull.head), [])
        return dict(pipelines[-1]["pipeline"]) if pipelines else None
