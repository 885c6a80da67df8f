"""drivers/forge/feedback.py: a pull request's review comments and failed checks, read from the
local stand-in for GitHub and GitLab (tests/forge_standin.py), which checks every request as their
documentation defines it, over a real bare repository."""

from __future__ import annotations

import pytest

from drivers import forge as f
from tests.forge_standin import widgets_with_feature
from tests.task_helpers import git

HOSTILE = "<script>alert(1)</script>\x00\x1b[31m$(rm -rf ~) `id`\ud800 --upload-pack=evil"


@pytest.fixture
def widgets(tmp_path, forge):
    """acme/widgets on both stand-in forges, a pull request #1 / !1 of branch "feature"."""
    repos = widgets_with_feature(tmp_path, forge)
    for repo in repos.values():
        f.open_pull_request(repo, forge.token, head="feature", base="main", title="Add f", body="", timeout=5)
    forge.requests.clear()
    return repos


def _said(forge, kind: str, path: str) -> None:
    forge.comment(kind, path, 1, author="ada", body="Rename f to g.", file="f.txt", line=1)
    forge.comment(kind, path, 1, author="bob", body="Please add a test.")
    forge.fail_check(kind, path, 1, name="unit tests", summary="2 failed", passing="lint")


def test_github_review_comments_and_failed_checks(widgets, forge):
    _said(forge, "github", "acme/widgets")

    found = f.list_feedback(widgets["github"], forge.token, 1, timeout=5)

    by_id = {item.forge_id: item for item in found}
    comment = next(i for i in found if i.path)
    assert comment == f.Feedback(
        forge_id=comment.forge_id,
        kind=f.Kind.COMMENT,
        author="ada",
        path="f.txt",
        line=1,
        body="Rename f to g.",
        url=f"https://github.com/acme/widgets/pull/1#discussion_r{comment.forge_id.split(':')[1]}",
    )
    review = next(i for i in found if i.forge_id.startswith("review:"))
    assert (review.kind, review.author, review.body, review.path, review.line) == (
        f.Kind.COMMENT,
        "bob",
        "Please add a test.",
        "",
        None,
    )
    (check,) = [i for i in found if i.kind == f.Kind.CHECK]  # lint passed, the commit status passed
    assert (check.name, check.author, check.body) == ("unit tests", "GitHub Actions", "unit tests: failure 2 failed")
    assert check.url.startswith("https://github.com/acme/widgets/runs/") and check.forge_id in by_id
    head = git(forge.repos[("github", "acme/widgets")].bare, "rev-parse", "feature").strip()
    assert [(r.method, r.path) for r in forge.requests] == [
        ("GET", "/github/repos/acme/widgets/pulls/1"),
        ("GET", "/github/repos/acme/widgets/pulls/1/reviews"),
        ("GET", "/github/repos/acme/widgets/pulls/1/comments"),
        ("GET", f"/github/repos/acme/widgets/commits/{head}/check-runs"),
        ("GET", f"/github/repos/acme/widgets/commits/{head}/status"),
    ]
    for request in forge.requests:
        assert request.headers["authorization"] == f"Bearer {forge.token}"
        assert request.headers["x-github-api-version"] == "2022-11-28"
    assert forge.requests[1].query == {"per_page": ["100"]}


def test_gitlab_discussions_and_failed_jobs_of_the_head_pipeline(widgets, forge):
    _said(forge, "gitlab", "acme/tools/widgets")
    forge.comment("gitlab", "acme/tools/widgets", 1, author="cy", body="Done already.", file="f.txt", resolved=True)

    found = f.list_feedback(widgets["gitlab"], forge.token, 1, timeout=5)

    comments = [i for i in found if i.kind == f.Kind.COMMENT]
    # GitLab's own notes ("added 1 commit") and the resolved thread are left out.
    assert [(c.author, c.path, c.line, c.body) for c in comments] == [
        ("ada", "f.txt", 1, "Rename f to g."),
        ("bob", "", None, "Please add a test."),
    ]
    assert all(c.forge_id.startswith("note:") for c in comments)
    (check,) = [i for i in found if i.kind == f.Kind.CHECK]
    assert (check.name, check.author, check.body) == ("test: unit tests", "GitLab CI", "script_failure")
    assert check.url.startswith("https://gitlab.com/acme/tools/widgets/-/jobs/")
    paths = [(r.method, r.path) for r in forge.requests]
    pipeline = forge.repos[("gitlab", "acme/tools/widgets")].checks
    (pipelines,) = pipeline.values()
    assert paths == [
        ("GET", "/gitlab/api/v4/projects/acme%2Ftools%2Fwidgets/merge_requests/1/discussions"),
        ("GET", "/gitlab/api/v4/projects/acme%2Ftools%2Fwidgets/merge_requests/1"),
        ("GET", f"/gitlab/api/v4/projects/acme%2Ftools%2Fwidgets/pipelines/{pipelines[0]['pipeline']['id']}/jobs"),
    ]
    assert forge.requests[-1].query == {"scope[]": ["failed"], "per_page": ["100"]}
    assert all(r.headers["private-token"] == forge.token and "authorization" not in r.headers for r in forge.requests)


@pytest.mark.parametrize(("kind", "path"), [("github", "acme/widgets"), ("gitlab", "acme/tools/widgets")])
def test_nothing_said_is_an_empty_list(widgets, forge, kind, path):
    assert f.list_feedback(widgets[kind], forge.token, 1, timeout=5) == []


@pytest.mark.parametrize(("kind", "path"), [("github", "acme/widgets"), ("gitlab", "acme/tools/widgets")])
def test_hostile_text_is_kept_as_text_without_control_characters(widgets, forge, kind, path):
    forge.comment(kind, path, 1, author="<b>eve</b>", body=HOSTILE, file="../../etc/passwd\n", line=1)
    (item,) = f.list_feedback(widgets[kind], forge.token, 1, timeout=5)
    assert item.body == "<script>alert(1)</script>[31m$(rm -rf ~) `id` --upload-pack=evil"
    assert item.path == "../../etc/passwd\n" and item.author == "<b>eve</b>"  # text only: never opened as a path
    assert f.feedback.link("javascript:alert(1)") == "" and f.feedback.link("https://x/ y") == ""
    assert len(f.feedback.text("x" * 10_000)) == f.feedback.BODY_LIMIT


@pytest.mark.parametrize("kind", ["github", "gitlab"])
def test_a_wrong_token_and_an_unknown_pull_request_say_so(widgets, forge, kind):
    with pytest.raises(f.TokenRejected, match="answered 401"):
        f.list_feedback(widgets[kind], "wrong", 1, timeout=5)
    with pytest.raises(f.NotFound, match="answered 404"):
        f.list_feedback(widgets[kind], forge.token, 7, timeout=5)


def test_an_answer_of_another_shape_is_refused_not_a_crash(widgets, forge):
    forge.comment("github", "acme/widgets", 1, author="ada", body="x", file="f.txt", line=1)
    forge.pulls("github", "acme/widgets")[0].feedback[0]["id"] = "x" * 500
    with pytest.raises(f.Refused, match="answered something unexpected about the review of #1"):
        f.list_feedback(widgets["github"], forge.token, 1, timeout=5)
